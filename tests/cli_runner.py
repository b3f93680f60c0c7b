"""Running `fs` in-process for tests, through the same entry point as the console script."""
from __future__ import annotations

from cli.main import main


def run(args, capsys):
    """Run `fs ARGS`; return (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err

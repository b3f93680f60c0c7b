"""The top-level import names cli, solvers and workflows: a package of the same name earlier on
the path (PyPI's `solvers` or `workflows`, a local `cli`) is named by `fs` in one line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli.own_packages import foreign_packages


def test_this_install_has_its_own_packages():
    assert foreign_packages() == []


def test_a_shadowing_package_is_one_line(tmp_path):
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[1])])}
    done = subprocess.run([sys.executable, "-c", "from cli.main import main; main(['info', '--store', 'x.h5'])"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"'workflows' is imported from {tmp_path / 'workflows' / '__init__.py'}" in done.stderr

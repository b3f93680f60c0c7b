"""Per-module table of a finished ``mutmut run`` (mutmut 3 keeps one ``.meta`` JSON per mutated
file under ``mutants/``): mutants, killed, survived, timeouts, no tests, kill rate.

    python bench/mutation_summary.py [mutants]
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code


def summary(root: Path) -> list[tuple[str, Counter]]:
    """(module path, Counter of mutmut statuses) for each mutated file under ``root``."""
    rows = []
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            name = str(meta.relative_to(root))[: -len(".meta")]
            rows.append((name, Counter(status_by_exit_code[c] for c in codes.values())))
    return rows


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "mutants")
    print("| module | mutants | killed | survived | timeout | no tests | other | kill rate |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    total: Counter = Counter()
    rows: list[tuple[str, Counter | None]] = [*summary(root), ("**all**", None)]
    for name, found in rows:
        counts = total if found is None else found
        if found is not None:
            total.update(found)
        n = sum(counts.values())
        other = n - counts["killed"] - counts["survived"] - counts["timeout"] - counts["no tests"]
        print(f"| {name} | {n} | {counts['killed']} | {counts['survived']} | {counts['timeout']} | "
              f"{counts['no tests']} | {other} | {counts['killed'] / n:.1%} |")


if __name__ == "__main__":
    main()

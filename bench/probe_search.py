"""The linear probe's C search before and after "every visited C scored by a converged fit":
CPU seconds of one search on a mid-size synthetic few-shot problem, single-threaded BLAS.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/probe_search.py [--before REV]

``--before REV`` loads solvers/few_shot/linear_probe.py as it was at REV (git show) beside the
working tree's version and times both in the same run, on the same rows.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solvers.few_shot.linear_probe import LinearProbe


def problem(seed: int, n_classes: int, dim: int, shots: int, n_val: int, noise: float):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim))
    y = np.repeat(np.arange(n_classes), shots)
    X = centres[y] + noise * rng.standard_normal((y.size, dim))
    y_val = np.arange(n_val) % n_classes
    return X, y, centres[y_val] + noise * rng.standard_normal((n_val, dim)), y_val


def load_at(rev: str):
    source = subprocess.run(["git", "show", f"{rev}:solvers/few_shot/linear_probe.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "linear_probe_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("linear_probe_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LinearProbe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="a git revision whose LinearProbe is timed too")
    parser.add_argument("--classes", type=int, default=50)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--n-val", type=int, default=250)
    parser.add_argument("--noise", type=float, default=2.0)
    parser.add_argument("--seeds", default="1")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    versions = {"after": LinearProbe}
    if args.before:
        versions = {"before": load_at(args.before), **versions}
    print(f"{args.classes} classes, D = {args.dim}, {args.shots} shots, {args.n_val} validation rows")
    for seed in (int(s) for s in args.seeds.split(",")):
        X, y, X_val, y_val = problem(seed, args.classes, args.dim, args.shots, args.n_val, args.noise)
        for name, cls in versions.items():
            t = time.process_time()
            model = cls().fit(X, y, X_val, y_val)
            cpu = time.process_time() - t
            print(f"seed {seed} {name:6s} C = {model.C_:.4g}  val accuracy {model.val_scores_[repr(model.C_)]:.4f}  "
                  f"fits {len(model.val_scores_)}  {cpu:.1f} CPU-s", flush=True)


if __name__ == "__main__":
    main()

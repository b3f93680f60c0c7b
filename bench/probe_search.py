"""The linear probe's C search, this tree's against a git revision's, in one run on the same rows:
CPU seconds of one search (one BLAS thread), the C chosen and its validation accuracy.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/probe_search.py [--before REV]
        [--classes 100 --dim 512 --shots 16 --n-val 500] [--rows gaussian|sweep]

``--before REV`` loads solvers/few_shot/linear_probe.py and logistic_lbfgs.py as they were at REV
(git show) beside the working tree's versions and prints the CPU-time ratio before / after.
``--rows gaussian``: class centres N(0, I), rows centre + noise N(0, I) (``--noise``);
``--rows sweep``: bench/benchmark.py's synthetic rows (0.25 x a unit class mean + N(0, I / dim),
L2-normalized), the rows of the four-method sweep's probe cells.
``--real STORE``: real features instead (a store with train and val splits, e.g. the
EfficientNet-Lite0 features of cifar10-small, ``--encoder``): few-shot rows drawn from train by
``fewshot_split`` at 1, 4, 16 shots x ``--seeds`` (``--pca K``: on the train rows' top K principal
directions, at 16, 32, 50 shots), C searched on val, the test accuracy on the train rows not
drawn. ``--float32`` forces the fits' float32 products on every fit of this tree's version
(``FLOAT32_MARGIN = 0``), to compare its choices where the margin rule would keep float64.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solvers.few_shot.linear_probe import LinearProbe


def problem(seed: int, n_classes: int, dim: int, shots: int, n_val: int, noise: float, rows: str = "gaussian",
            n_test: int = 0):
    """(X, y, X_val, y_val, X_test, y_test): ``shots`` rows per class, ``n_val`` and ``n_test`` rows
    with the classes in turn."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), shots)
    y_val, y_test = np.arange(n_val) % n_classes, np.arange(n_test) % n_classes
    if rows == "sweep":  # bench/benchmark.py's write_store
        means = rng.standard_normal((n_classes, dim))
        means /= np.linalg.norm(means, axis=1, keepdims=True)

        def draw(labels: np.ndarray) -> np.ndarray:
            X = 0.25 * means[labels] + rng.standard_normal((labels.size, dim)) / np.sqrt(dim)
            return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    else:
        centres = rng.standard_normal((n_classes, dim))

        def draw(labels: np.ndarray) -> np.ndarray:
            return centres[labels] + noise * rng.standard_normal((labels.size, dim))

    return draw(y), y, draw(y_val), y_val, draw(y_test), y_test


def _load(name: str, source: str) -> types.ModuleType:
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_at(rev: str):
    def show(path: str) -> str:
        return subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True, text=True).stdout

    _load("logistic_lbfgs_before", show("solvers/few_shot/logistic_lbfgs.py"))
    probe = show("solvers/few_shot/linear_probe.py").replace(
        "from solvers.few_shot.logistic_lbfgs import", "from logistic_lbfgs_before import")
    return _load("linear_probe_before", probe).LinearProbe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="a git revision whose LinearProbe is timed too")
    parser.add_argument("--classes", type=int, default=50)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--n-val", type=int, default=250)
    parser.add_argument("--noise", type=float, default=2.0)
    parser.add_argument("--n-test", type=int, default=0, help="test rows drawn as the validation rows are (0: none)")
    parser.add_argument("--rows", choices=("gaussian", "sweep"), default="gaussian")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--real", help="a store of real features (train and val splits)")
    parser.add_argument("--encoder", default="timm:tf_efficientnet_lite0/sha256-5cee0688c863")
    parser.add_argument("--pca", type=int, default=0, help="with --real: the top K principal directions")
    parser.add_argument("--float32", action="store_true", help="force float32 products (this tree's version)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.float32:
        from solvers.few_shot import logistic_lbfgs

        logistic_lbfgs.FLOAT32_MARGIN = 0.0
    versions = {"after": LinearProbe}
    if args.before:
        versions = {"before": load_at(args.before), **versions}
    if args.real:
        real(args, versions)
        return
    print(f"{args.classes} classes, D = {args.dim}, {args.shots} shots, {args.n_val} validation rows, {args.rows} rows")
    for seed in (int(s) for s in args.seeds.split(",")):
        X, y, X_val, y_val, X_test, y_test = problem(seed, args.classes, args.dim, args.shots, args.n_val,
                                                     args.noise, args.rows, args.n_test)
        seconds = {}
        for name, cls in versions.items():
            t = time.process_time()
            model = cls().fit(X, y, X_val, y_val)
            seconds[name] = time.process_time() - t
            scores = model.val_scores_ or {}
            test = f"  test accuracy {model.score(X_test, y_test):.4f}" if y_test.size else ""
            print(f"seed {seed} {name:6s} C = {model.C_:.4g}  val accuracy {scores[repr(model.C_)]:.4f}{test}  "
                  f"fits {len(scores)}  {seconds[name]:.1f} CPU-s", flush=True)
        if len(seconds) == 2:
            print(f"seed {seed} before / after: {seconds['before'] / seconds['after']:.2f}x", flush=True)


def real(args: argparse.Namespace, versions: dict) -> None:
    """Each version's search on real few-shot rows: C, validation and test accuracy, CPU-s."""
    from featurestore.store.feature_store import FeatureStore
    from solvers.model_selection.fewshot import fewshot_split

    with FeatureStore(args.real) as store:
        X, y = store.features(args.encoder, "train"), np.asarray(store.labels("train"))
        X_val, y_val = store.features(args.encoder, "val"), np.asarray(store.labels("val"))
    if args.pca:
        Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)[2][:args.pca]
        X, X_val = X @ Vt.T, X_val @ Vt.T
    print(f"{args.real}: train {X.shape}, val {X_val.shape}{', float32 products forced' if args.float32 else ''}")
    total = dict.fromkeys(versions, 0.0)
    same = 0
    for shots in (16, 32, 50) if args.pca else (1, 4, 16):
        for seed in (int(s) for s in args.seeds.split(",")):
            rows = fewshot_split(y, shots, seed, allow_fewer=True)
            rest = np.setdiff1d(np.arange(y.size), rows)
            out, chosen = [], set()
            for name, cls in versions.items():
                t = time.process_time()
                model = cls().fit(X[rows], y[rows], X_val, y_val)
                total[name] += time.process_time() - t
                val, test = model.val_scores_[repr(model.C_)], model.score(X[rest], y[rest])
                chosen.add((model.C_, val, test))
                out.append(f"{name} C = {model.C_:.4g} val {val:.4f} test {test:.4f}")
            same += len(chosen) == 1
            print(f"shots {shots:2d} seed {seed}: " + " | ".join(out), flush=True)
    print(f"identical C, validation and test accuracy in {same} searches; CPU-s "
          + ", ".join(f"{name} {seconds:.1f}" for name, seconds in total.items()))


if __name__ == "__main__":
    main()

"""Tip-Adapter at ImageNet size, timed: the alpha/beta search on validation (fit) and the test
logits (class_logits), in CPU seconds of this process, one BLAS thread (as a `bench/benchmark.py
--jobs 2` worker on two cores).

The data are bench/benchmark.py's ImageNet store rows, made in memory: 1000 classes, 1024-d
Gaussian class clusters on the sphere, 4 validation rows per class (4,000, as fs benchmark holds
out for ImageNet), 50,000 test rows, text weights near the class means; the search uses the
official ImageNet preset (beta scale 7, alpha scale 3, steps 200 x 20).

Run: python bench/tip_adapter_search.py [--shots 1,16] [--classes 1000] [--dim 1024] [--test 50000]
Prints one line per shots: fit CPU-s, class_logits CPU-s, the chosen (alpha, beta) and the
validation accuracy, so that two versions of the solver can be compared back to back: run this
file from a checkout of each (e.g. `git archive <commit> | tar -x -C /tmp/before`).
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # before NumPy loads its BLAS

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

# Run as a script, this file's folder comes first on sys.path; put the repository root there.
sys.path[0] = str(Path(__file__).resolve().parents[1])

SIGNAL, TEXT_NOISE = 0.25, 1.0  # as bench/benchmark.py's stores


def make_rows(rng: np.random.Generator, means: np.ndarray, y: np.ndarray) -> np.ndarray:
    X = SIGNAL * means[y] + rng.standard_normal((y.size, means.shape[1]), dtype=np.float32) / np.sqrt(means.shape[1])
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)  # float32, as the stores hold


def main() -> None:
    from solvers.few_shot.tip_adapter import TipAdapter

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots", default="1,16")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--val-per-class", type=int, default=4)
    parser.add_argument("--test", type=int, default=50000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    C, D = args.classes, args.dim
    means = rng.standard_normal((C, D)).astype(np.float32)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    text = (means + TEXT_NOISE * rng.standard_normal(means.shape) / np.sqrt(D)).astype(np.float32)
    y_val = np.arange(C * args.val_per_class) % C
    X_val = make_rows(rng, means, y_val)
    y_test = np.arange(args.test) % C
    X_test = make_rows(rng, means, y_test)
    print(f"Tip-Adapter, {C} classes, {D}-d float32, {y_val.size} validation rows, {y_test.size} test rows, "
          f"preset imagenet (7, 3), steps (200, 20); CPU seconds, one BLAS thread")
    for shots in [int(s) for s in args.shots.split(",")]:
        y = np.repeat(np.arange(C), shots)
        X = make_rows(rng, means, y)
        model = TipAdapter(text_weights=text, search_scale="imagenet")
        cpu, wall = time.process_time(), time.perf_counter()
        model.fit(X, y, X_val, y_val)
        fit_cpu, fit_wall = time.process_time() - cpu, time.perf_counter() - wall
        cpu = time.process_time()
        top1 = float(np.mean(model.class_logits(X_test).argmax(1) == y_test))
        logits_cpu = time.process_time() - cpu
        print(f"{shots:>2} shots: fit (search) {fit_cpu:7.1f} CPU-s ({fit_wall:.1f} s wall), "
              f"class_logits {logits_cpu:5.1f} CPU-s; alpha {model.alpha_!r}, beta {model.beta_!r}, "
              f"val accuracy {model.val_accuracy_!r}, test top1 {top1:.4f}", flush=True)


if __name__ == "__main__":
    main()

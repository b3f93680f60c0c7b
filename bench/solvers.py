"""Fit / predict times of every solver on a synthetic 1000-class, 16-shot, 512-d problem
(16,000 train rows, 50,000 test rows, float32), our GDA fit time relative to scikit-learn's
LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"), and import times of `solvers`.

Run: python bench/solvers.py   (prints figures measured in this run; asserts nothing)
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# `solvers` package; put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

C, SHOTS, D, N_TEST = 1000, 16, 512, 50_000


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((C, D)).astype(np.float32)
    text = centres + 2.0 * rng.standard_normal((C, D)).astype(np.float32)
    y = np.repeat(np.arange(C), SHOTS)
    X = centres[y] * 0.35 + rng.standard_normal((y.size, D)).astype(np.float32)
    y_test = rng.integers(0, C, N_TEST)
    X_test = centres[y_test] * 0.35 + rng.standard_normal((N_TEST, D)).astype(np.float32)
    return X, y, X_test, y_test, text


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def import_time(module: str) -> float:
    """Cumulative import time (s) of ``module`` from ``python -X importtime`` in a fresh process."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         capture_output=True, text=True, check=True, cwd=sys.path[0]).stderr
    for line in err.splitlines()[::-1]:
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if m and m.group(2) == module:
            return int(m.group(1)) / 1e6
    return float("nan")


def main() -> None:
    from solvers.few_shot.gda import GDA
    from solvers.few_shot.knn import KNN
    from solvers.few_shot.linear_probe import LinearProbe
    from solvers.few_shot.tip_adapter import TipAdapter
    from solvers.zero_shot.zero_shot import ZeroShot

    X, y, X_test, y_test, text = make_data()
    print(f"data: {C} classes x {SHOTS} shots x {D}-d, train {X.shape}, test {X_test.shape}, float32")
    np.ones((N_TEST, C), np.float32).sum()
    GDA().fit(X[:2000], y[:2000] % 100).predict(X_test[:1000])
    solvers = {
        "zero-shot": ZeroShot(text_weights=text),
        "gda (no text)": GDA(),
        "gda + zero-shot": GDA(text_weights=text),
        "linear-probe C=1 max_iter=50": LinearProbe(C=1.0, max_iter=50),
        "tip-adapter": TipAdapter(text_weights=text),
        "knn k=16 (faiss Flat)": KNN(k=16),
    }
    print(f"{'solver':34s} {'fit s':>8s} {'predict s':>10s} {'test acc':>9s}")
    gda_fit = None
    for name, model in solvers.items():
        fit_args = () if name == "zero-shot" else (X, y)
        _, t_fit = timed(lambda model=model, fit_args=fit_args: model.fit(*fit_args))
        pred, t_pred = timed(lambda model=model: model.predict(X_test))
        if name == "gda (no text)":
            gda_fit, gda_pred = t_fit, t_pred
        print(f"{name:34s} {t_fit:8.3f} {t_pred:10.3f} {np.mean(pred == y_test):9.4f}")
    print(f"GDA fit+predict (no text): {gda_fit + gda_pred:.3f} s (goal < 1 s)")

    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    _, t_lda = timed(lambda: lda.fit(Xn, y))
    print(f"sklearn LDA(lsqr, shrinkage=auto) fit: {t_lda:.3f} s; our GDA fit / LDA fit = "
          f"{gda_fit / t_lda:.3f} ({t_lda / gda_fit:.1f}x faster)")

    for module in ("solvers", "solvers.few_shot.gda", "cli.main"):
        print(f"import {module}: {import_time(module) * 1000:.1f} ms (python -X importtime, cumulative)")
    end_to_end_solve(X, y, X_test, y_test, text)


def end_to_end_solve(X, y, X_test, y_test, text) -> None:
    """`fs solve gda` from process start to printed accuracy, on the same problem in a store."""
    import tempfile

    from featurestore.store.feature_store import FeatureStore

    path = Path(tempfile.mkdtemp(prefix="fs-bench-")) / "problem.h5"
    with FeatureStore(path, mode="a") as store:
        for split, feats, labels in (("train", X, y), ("test", X_test, y_test)):
            n = len(labels)
            store.add_rows(split, [f"{split}{i}" for i in range(n)], [""] * n, labels,
                           classes=[f"class {c}" for c in range(C)])
            store.ensure_encoder("bench/synthetic", {"model": "synthetic", "weights": "none", "embed_dim": D})
            store.prepare_features("bench/synthetic", split, D)
            store.begin_appending()
            store.write_features("bench/synthetic", split, np.arange(n), feats, np.ones(n, bool), [""] * n)
        weights = text / np.linalg.norm(text, axis=1, keepdims=True)
        store.put_text_bank("bench/synthetic", "train/imagenet", weights, [f"class {c}" for c in range(C)],
                            kind="classes", classes=[f"class {c}" for c in range(C)])
    command = [sys.executable, "-m", "cli.main", "solve", "gda", "--store", str(path), "--encoder",
               "bench/synthetic", "--train", "train", "--test", "test"]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=sys.path[0]).stdout
        times.append(time.perf_counter() - start)
    print(f"`fs solve gda` end to end (process start to printed accuracy, best of 3): {min(times):.2f} s "
          f"(goal < 2 s) -> {out.strip()}")


if __name__ == "__main__":
    main()

"""Metrics of logits that arrive in row blocks (``LogitMetrics``, ``workflows.solve.score``) equal
scikit-learn's and the whole-matrix ones; ``fs solve gda`` imports no heavy library it does not use."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss, top_k_accuracy_score

from solvers.errors import InputError
from solvers.metrics.classification import LogitMetrics, logit_metrics

ROOT = Path(__file__).resolve().parents[1]


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _ece_brute(y, probs, n_bins=15):
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == y
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        if inside.any():
            total += inside.sum() * abs(correct[inside].mean() - conf[inside].mean())
    return total / y.size


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("block", [1, 37, 5000])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_blocks_equal_sklearn_and_the_whole_matrix(block, temperature):
    rng = np.random.default_rng(block)
    n, C = 1203, 40
    logits = (1.5 * rng.standard_normal((n, C))).astype(np.float32)
    y = rng.integers(0, C, n)
    y[y == 7] = 8  # class 7 absent: balanced accuracy averages the classes present only
    logits[:20, :3] = 9.0  # exact ties: the lower class wins, as argmax
    metrics = LogitMetrics(temperature, n_rows=n // 2)  # too small on purpose: the arrays grow
    for lo in range(0, n, block):
        metrics.add(y[lo:lo + block], logits[lo:lo + block])
    got = metrics.result()
    assert got == logit_metrics(y, logits, temperature)  # float for float
    probs = _softmax(logits.astype(np.float64) / temperature)
    assert got["top1"] == accuracy_score(y, logits.argmax(axis=1))
    assert got["top5"] == pytest.approx(top_k_accuracy_score(y, logits, k=5, labels=np.arange(C)), abs=0.002)
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, logits.argmax(axis=1)), abs=1e-12)
    assert probs[np.arange(n), y].min() > 1e-12  # no clipping: scikit-learn clips elsewhere
    assert got["nll"] == pytest.approx(log_loss(y, probs, labels=np.arange(C)), rel=1e-9)
    assert got["ece"] == pytest.approx(_ece_brute(y, probs), abs=1e-12)


def test_top5_ties_are_not_counted_in_the_true_class_favour():
    logits = np.zeros((1, 10))  # all tied: the true class's place is its column index
    metrics = LogitMetrics()
    for label in range(10):
        metrics.add(np.array([label]), logits)
    got = metrics.result()
    assert got["top1"] == 0.1 and got["top5"] == 0.5


def test_blocks_of_another_width_are_refused():
    metrics = LogitMetrics()
    metrics.add(np.array([0]), np.zeros((1, 3)))
    with pytest.raises(InputError, match="4 classes"):
        metrics.add(np.array([0]), np.zeros((1, 4)))


@pytest.mark.parametrize("subset", [None, np.array([4, 1, 6])])
def test_score_in_blocks_equals_the_whole_split(monkeypatch, subset):
    import workflows.solve as solve

    rng = np.random.default_rng(3)
    W = rng.standard_normal((8, 5)).astype(np.float32)

    class Linear:
        temperature = 0.8
        calls = 0

        def class_logits(self, X):
            Linear.calls += 1
            return X @ W.T

    X = rng.standard_normal((103, 5)).astype(np.float32)
    y = rng.integers(0, 8, 103)
    if subset is not None:
        y = subset[y % subset.size]
    logits = X @ W.T
    labels = y
    if subset is not None:
        position = np.full(8, -1)
        position[subset] = np.arange(subset.size)
        logits, labels = logits[:, subset], position[y]
    expected = logit_metrics(labels, logits, 0.8)
    monkeypatch.setattr(solve, "SCORE_BLOCK_ROWS", 10)
    assert solve.score(Linear(), X, y, subset) == expected
    assert Linear.calls == 11  # 103 rows in blocks of 10: the split was scored block by block


def test_solve_gda_does_not_import_unused_heavy_libraries(tmp_path):
    from featurestore.store.feature_store import FeatureStore

    rng = np.random.default_rng(0)
    path, names, key = tmp_path / "s.h5", ["a", "b", "c"], "enc"
    with FeatureStore(path, mode="a") as store:
        store.ensure_encoder(key, {"model": "m", "weights": "none", "embed_dim": 4})
        for split, n in (("train", 12), ("test", 9)):
            y = np.arange(n) % 3
            store.add_rows(split, [f"{split}{i}" for i in range(n)], [""] * n, y.tolist(), classes=names)
            store.prepare_features(key, split, 4)
            store.begin_appending()
            X = (np.eye(3, 4)[y] + 0.1 * rng.standard_normal((n, 4))).astype(np.float32)
            store.write_features(key, split, np.arange(n), X, np.ones(n, bool), [""] * n)
    heavy = ["torch", "sklearn", "faiss", "PIL", "pandas", "matplotlib", "open_clip", "timm", "scipy.optimize", "tqdm"]
    code = ("import sys, json, runpy\n"
            f"sys.argv = ['fs', 'solve', 'gda', '--store', {str(path)!r}, '--encoder', 'enc', '--train', 'train', "
            "'--test', 'test', '--json']\n"
            "try:\n    runpy.run_module('cli.main', run_name='__main__')\n"
            "except SystemExit as stop:\n    assert not stop.code, stop.code\n"
            f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
    assert "top1" in done.stdout  # it did solve


def test_a_cell_takes_the_rows_its_plan_drew_without_drawing_again(tmp_path, monkeypatch):
    from solvers.model_selection import fewshot
    from tests.test_benchmark_rows import ENCODER, _named_store
    from workflows.benchmark import HOLDOUT_PER_CLASS, cell_draws, fit_cell, load_dataset, plan_cells
    from workflows.solve import holdout_rows

    path = _named_store(tmp_path / "pets.h5", "oxford_pets", val=False, seed=3)
    methods = ["zero-shot", "gda"]
    data = load_dataset(path, ENCODER, methods)
    cells = plan_cells([data], methods, [1, 4], [1, 2])
    y = data.y_train
    expected = [holdout_rows(y, np.zeros(0, np.int64), HOLDOUT_PER_CLASS, 0, data.name)]  # zero-shot's validation
    for k, s in ((1, 1), (1, 2), (4, 1), (4, 2)):  # drawn here, independently of the plan
        rows = fewshot.fewshot_split(y, k, s, sampler="coop")
        expected += [rows, holdout_rows(y, rows, HOLDOUT_PER_CLASS, s, data.name)]
    calls = []
    real = fewshot.fewshot_split
    monkeypatch.setattr(fewshot, "fewshot_split", lambda *a, **k: calls.append(a[1:3]) or real(*a, **k))
    options = {"sampler": "auto", "holdout": HOLDOUT_PER_CLASS}
    assert np.array_equal(cell_draws(data, cells, options), np.unique(np.concatenate(expected)))
    planned = len(calls)
    assert planned == 9  # four few-shot draws, five held-out ones
    for _, method, k, s in cells:
        fit_cell(data, method, k, s, {}, options)
    assert len(calls) == planned  # every cell took the rows its plan drew

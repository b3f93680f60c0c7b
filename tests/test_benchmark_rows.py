"""The sweep reads a training pool by row index (issue 26): the rows read by index equal the rows
of the whole-pool read, a prefetched sweep reads no row twice, and every cell's metrics equal
those of the whole-pool path (the reference is computed here by loading each store whole and
fitting every cell on it); a split scored in row blocks gives the metrics of one pass."""
from __future__ import annotations

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore, h5_name
from tests.store_fixtures import make_feature_store

ENCODER = "test/enc"
METRICS = ("top1", "top5", "balanced_accuracy", "ece", "nll")


def _pool_store(path, *, n=3000, dim=256, classes=7, seed=0):
    """A pool over three HDF5 chunks (256-d rows: 1,024 rows a chunk) with unlabelled rows and rows
    whose image failed (invalid), so the labelled rows' positions differ from the stored ones."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dim)).astype(np.float32)
    y = rng.integers(0, classes, n)
    y[rng.choice(n, 150, replace=False)] = -1
    names = [f"c{i}" for i in range(classes)]
    make_feature_store(path, {"train": X}, ENCODER, labels={"train": y}, classes={"train": names},
                       invalid={"train": rng.choice(n, 90, replace=False)})
    return path


def test_rows_read_by_index_equal_the_whole_pool_rows(tmp_path, monkeypatch):
    from workflows.inputs.solver_inputs import labelled, stored_labelled

    path = _pool_store(tmp_path / "pool.h5")
    with FeatureStore(path) as store:
        assert store.file[f"encoders/{h5_name(ENCODER)}/images/train"].chunks[0] < 3000 // 2
        X, y = labelled(store, ENCODER, "train")
        rows, y_rows = stored_labelled(store, ENCODER, "train")
        whole = store.features(ENCODER, "train", valid_only=False)
        picked = np.array([2999, 5, 5, 1024, 1023, 2048, 0, 17])
        assert np.array_equal(store.features_at(ENCODER, "train", picked, valid_only=False), whole[picked])
    assert np.array_equal(y_rows, y) and rows.shape == X.shape and len(rows) == len(X)
    rng = np.random.default_rng(1)
    takes = (rng.choice(len(X), 40, replace=False), rng.integers(0, len(X), 500), np.arange(len(X))[::-1])
    for take in takes:
        assert np.array_equal(rows[take], X[take])  # any order, repeats, across chunks
    assert rows.rows_read == 40 + len(np.unique(takes[1])) + len(X)  # each distinct row read once a call
    prefetched = np.sort(rng.choice(len(X), 300, replace=False))
    rows.prefetch(prefetched)
    before = rows.rows_read
    inside = prefetched[[5, 0, 299, 5]]
    assert np.array_equal(rows[inside], X[inside]) and rows.rows_read == before  # served from memory
    outside = np.setdiff1d(np.arange(len(X)), prefetched)[:3]
    mixed = np.concatenate([inside, outside, outside[:1]])
    assert np.array_equal(rows[mixed], X[mixed]) and rows.rows_read == before + 3  # only the 3 missing read
    assert np.array_equal(np.asarray(rows), X)
    from workflows.inputs import stored_rows

    monkeypatch.setattr(stored_rows, "PARALLEL_READ_MIN_ROWS", 10)
    rows.prefetch(np.arange(len(X))[::3], processes=3)  # three forked readers, one shared array
    before = rows.rows_read
    assert np.array_equal(rows[np.arange(len(X))[::3]], X[::3]) and rows.rows_read == before
    with pytest.raises(IndexError):
        rows[np.array([len(X)])]


def _named_store(path, dataset, *, val, seed):
    """Six Gaussian classes, 24-d, of a named dataset (the CoOp sampler), with or without a val split."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(6, 24))
    names = [f"class{i}" for i in range(6)]

    def draw(n):
        y = np.repeat(np.arange(6), n)
        return (means[y] + 1.3 * rng.normal(size=(y.size, 24))).astype(np.float32), y

    parts = {"train": draw(30), "test": draw(12), **({"val": draw(5)} if val else {})}
    make_feature_store(path, {k: v[0] for k, v in parts.items()}, ENCODER, labels={k: v[1] for k, v in parts.items()},
                       classes={k: names for k in parts})
    with FeatureStore(path, mode="a") as store:
        ids = list(store.ids("train", valid_only=False))
        store.add_rows("train", ids, list(store.paths("train", valid_only=False)),
                       list(store.labels("train", valid_only=False)), source=f"dataset:{dataset}:/data/{dataset}")
        text = means + 0.9 * rng.normal(size=means.shape)
        store.put_text_bank(ENCODER, "train/dataset", (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(
            np.float32), names, kind="classes", classes=names, templates=["{}"])
    return str(path)


@pytest.mark.parametrize("jobs", [1, 2])
def test_sweep_metrics_equal_the_whole_pool_path_in_every_cell(tmp_path, jobs):
    from workflows.benchmark import fit_cell, load_dataset, plan_cells, run

    stores = [_named_store(tmp_path / "pets.h5", "oxford_pets", val=False, seed=0),
              _named_store(tmp_path / "dtd.h5", "dtd", val=True, seed=1)]
    methods, shots, seeds = ["zero-shot", "gda", "tip-adapter"], [1, 2, 4], [1, 2]
    frame = run(stores, ENCODER, methods=methods, shots=shots, seeds=seeds, jobs=jobs, quiet=True)
    swept = {(r["dataset"], r["method"], int(r["shots"]), int(r["seed"])): r for r in frame.to_dict("records")}
    reference = {}
    for path in stores:  # the whole-pool loader, every cell fitted on it
        data = load_dataset(path, ENCODER, methods, rows_by_index=False)
        assert isinstance(data.X_train, np.ndarray)
        for _, method, k, s in plan_cells([data], methods, shots, seeds):
            for row in fit_cell(data, method, k, s, {}):
                reference[(row["dataset"], method, k, s)] = row
    assert len(swept) == len(reference) == 2 * (1 + 2 * 3 * 2)
    for key, row in reference.items():
        for metric in (*METRICS, "hyperparameters", "val", "sampler"):
            assert swept[key][metric] == row[metric], (key, metric)


def test_prefetched_draws_cover_every_cell(tmp_path):
    from workflows.benchmark import HOLDOUT_PER_CLASS, fit_cell, load_dataset, plan_cells, prefetch_draws
    from workflows.inputs.stored_rows import StoredRows

    path = _named_store(tmp_path / "pets.h5", "oxford_pets", val=False, seed=3)
    methods = ["zero-shot", "gda", "linear-probe"]
    data = load_dataset(path, ENCODER, methods)
    assert isinstance(data.X_train, StoredRows)
    cells = plan_cells([data], methods, [1, 2, 8], [1, 5])
    options = {"sampler": "auto", "holdout": HOLDOUT_PER_CLASS}
    read = prefetch_draws(data, cells, options)
    assert 0 < read < len(data.X_train)
    for _, method, k, s in cells:
        fit_cell(data, method, k, s, {"C": 1.0} if method == "linear-probe" else {}, options)
    assert data.X_train.rows_read == 0  # every row a cell took was in the one prefetch pass


def test_a_split_scored_in_blocks_gives_the_metrics_of_one_pass(monkeypatch):
    from solvers.few_shot.gda import GDA
    from solvers.metrics.classification import logit_metrics
    from solvers.zero_shot.zero_shot import ZeroShot
    from workflows import solve

    rng = np.random.default_rng(4)
    means = rng.normal(size=(9, 32))
    y = rng.integers(0, 9, 700)
    X = (means[y] + 2.0 * rng.normal(size=(700, 32))).astype(np.float32)
    text = (means + rng.normal(size=means.shape)).astype(np.float32)
    monkeypatch.setattr(solve, "SCORE_BLOCK_ROWS", 128)
    for solver in (GDA(text_weights=text, alpha=0.5).fit(X[:300], y[:300]), ZeroShot(text_weights=text).fit()):
        blocked = np.vstack([solver.class_logits(X[s:s + 128]) for s in range(300, len(X), 128)])
        whole = solver.class_logits(X[300:])
        np.testing.assert_allclose(blocked, whole, rtol=1e-6, atol=1e-5)
        assert np.array_equal(blocked.argmax(axis=1), whole.argmax(axis=1))
        assert solve.score(solver, X[300:], y[300:]) == pytest.approx(logit_metrics(y[300:], whole), rel=1e-6)

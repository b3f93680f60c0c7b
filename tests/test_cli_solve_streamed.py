"""`fs solve` scores its test split block by block as it reads it from the store (``StreamedRows``,
the next block read on a thread): the records equal those of the whole-split path, which reads the
split into one array first (the oracle), for every metric, with rows that are invalid or unlabelled
(a split whose labelled rows are not consecutive stored rows), blocks that do not divide the split,
with and without the reader thread. A checksum failure in a block read on the thread is the
caller's one-line error."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import workflows.solve as solve
from featurestore.errors import StoreDamagedError
from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run as fs
from workflows.inputs.streamed_split import StreamedRows

ENCODER = "test/enc"
CLASSES = [f"c{k}" for k in range(7)]
DIM = 24


def _write(store: FeatureStore, split: str, X: np.ndarray, y: np.ndarray, valid: np.ndarray) -> None:
    ids = [f"{split}-{i:05d}" for i in range(len(y))]
    rows = store.add_rows(split, ids, [f"{split}/{i}.jpg" for i in ids], list(map(int, y)), classes=CLASSES)
    store.ensure_encoder(ENCODER, {"model": "m", "weights": "w", "embed_dim": DIM})
    store.prepare_features(ENCODER, split, DIM)
    store.begin_appending()
    store.write_features(ENCODER, split, rows, X, valid, [""] * len(y))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    means = rng.normal(size=(len(CLASSES), DIM))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, len(CLASSES), n)
        X = means[y] + 1.4 * rng.normal(size=(n, DIM))
        return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y

    path = tmp_path_factory.mktemp("streamed") / "s.h5"
    with FeatureStore(path, mode="a") as writer:
        X, y = draw(300)
        _write(writer, "train", X, y, np.ones(300, bool))
        X, y = draw(1000)
        _write(writer, "test", X, y, np.ones(1000, bool))
        X, y = draw(1000)
        y[rng.random(1000) < 0.1] = -1  # unlabelled rows
        valid = rng.random(1000) > 0.05  # rows whose image did not decode
        _write(writer, "holey", X, y, valid)
        text = means + 0.5 * rng.normal(size=means.shape)
        writer.put_text_bank(ENCODER, "bank", (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32),
                             CLASSES, kind="classes", classes=CLASSES)
    return path


@pytest.mark.parametrize("test", ["test", "holey"])
@pytest.mark.parametrize("method", ["gda", "zero-shot", "tip-adapter"])
@pytest.mark.parametrize(("block", "prefetch"), [(64, True), (333, True), (333, False), (8192, True)])
def test_streamed_scores_equal_the_whole_split(store, monkeypatch, test, method, block, prefetch):
    monkeypatch.setattr(solve, "SCORE_BLOCK_ROWS", block)
    monkeypatch.setattr(solve, "STREAM_PREFETCH", prefetch)
    load = {"train": "train", "test": test, "encoder": ENCODER, "bank": "bank", "methods": [method]}
    whole = solve.load_dataset(store, **load)
    streamed = solve.load_dataset(store, **load, stream_test=True)
    assert isinstance(streamed.X_test, StreamedRows) and isinstance(whole.X_test, np.ndarray)
    np.testing.assert_array_equal(streamed.y_test, whole.y_test)
    np.testing.assert_array_equal(np.asarray(streamed.X_test), whole.X_test)
    np.testing.assert_array_equal(streamed.X_test[5:40], whole.X_test[5:40])
    a, b = (solve.run(method, data, 5, 1) for data in (whole, streamed))
    assert a.metrics == b.metrics and a.chosen == b.chosen
    # the oracle of the oracle: the metrics of the whole split's logits in one array, those logits
    # computed in the scoring's blocks (OpenBLAS's float32 GEMM sums a row's products in an order
    # that depends on how many rows it is given: the logits of one call on the whole split agree
    # to float32 rounding, not bit for bit)
    from solvers.metrics.classification import logit_metrics

    assert whole.y_test is not None and whole.X_test is not None
    X_test = whole.X_test
    logits = np.vstack([a.solver.class_logits(X_test[s:s + block]) for s in range(0, len(X_test), block)])
    assert logit_metrics(whole.y_test, logits) == b.metrics
    np.testing.assert_allclose(a.solver.class_logits(whole.X_test), logits, rtol=1e-5, atol=1e-6)


def test_blocks_cover_the_rows_in_order(store):
    with FeatureStore(store) as reader:
        from workflows.inputs.solver_inputs import labelled
        from workflows.inputs.streamed_split import streamed_labelled

        rows, y = streamed_labelled(reader, ENCODER, "holey", CLASSES)
        X, y_whole = labelled(reader, ENCODER, "holey", CLASSES)
    np.testing.assert_array_equal(y, y_whole)
    for prefetch in (True, False):
        seen = [block.copy() for block in rows.blocks(100, prefetch=prefetch)]
        assert [len(b) for b in seen] == [100] * (len(y) // 100) + ([len(y) % 100] if len(y) % 100 else [])
        np.testing.assert_array_equal(np.vstack(seen), X)


def test_cli_json_equals_the_whole_split_path(store, capsys, monkeypatch):
    args = ["solve", "gda", "--store", str(store), "--encoder", ENCODER, "--train", "train", "--test", "holey",
            "--bank", "bank", "--shots", "4", "--seeds", "1,2", "--json"]
    code, out, _ = fs(args, capsys)
    assert code == 0
    streamed = json.loads(out)
    original = solve.load_dataset
    monkeypatch.setattr(solve, "load_dataset", lambda *a, **k: original(*a, **{**k, "stream_test": False}))
    code, out, _ = fs(args, capsys)
    assert code == 0
    whole = json.loads(out)
    for run in (*streamed["runs"], *whole["runs"]):
        run.pop("fit_s"), run.pop("predict_s")
    assert streamed == whole


def test_a_checksum_failure_in_the_reader_thread_is_one_line(store, tmp_path, capsys, monkeypatch):
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(store.read_bytes())
    with h5py.File(damaged, "r") as f:  # flip one byte inside a chunk of the test features, late in the split
        ds = f[f"encoders/{ENCODER.replace('/', '|')}/images/test"]
        offset = ds.id.get_chunk_info(ds.id.get_num_chunks() - 1).byte_offset
    with open(damaged, "r+b") as f:
        f.seek(offset + 8)
        byte = f.read(1)
        f.seek(offset + 8)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(solve, "SCORE_BLOCK_ROWS", 64)
    data = solve.load_dataset(damaged, train="train", test="test", encoder=ENCODER, bank="bank", methods=["gda"],
                              stream_test=True)
    with pytest.raises(StoreDamagedError, match="checksum"):
        solve.run("gda", data, 5, 1)
    code, _, err = fs(["solve", "gda", "--store", str(damaged), "--encoder", ENCODER, "--train", "train",
                       "--test", "test", "--bank", "bank"], capsys)
    err = err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "checksum" in err

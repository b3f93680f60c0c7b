"""FAISS store indexes against a brute-force NumPy cosine search (the oracle)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featurestore.errors import FeatureStoreError, NotFoundError, ProvenanceError
from featurestore.index.store_index import build_index, index_paths, load_index, recall_at_k
from featurestore.store.feature_store import FeatureStore
from tests.store_fixtures import default_ids, make_feature_store

ENC = "test/enc"


def brute_force(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k by NumPy: (scores, positions), best first."""
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q.astype(np.float64) @ b.astype(np.float64).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


def random_store(tmp_path: Path, n: int, d: int = 16, seed: int = 0, **kwargs) -> tuple[Path, np.ndarray]:
    feats = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return make_feature_store(tmp_path / "s.h5", {"train": feats}, **kwargs), feats


def test_flat_matches_brute_force_and_saves_beside_store(tmp_path: Path) -> None:
    path, feats = random_store(tmp_path, 300)
    queries = np.random.default_rng(1).normal(size=(12, 16)).astype(np.float32) * 3.0
    index = build_index(path, ENC, "train", quiet=True)
    scores, positions = index.search(queries, 10)
    want_scores, want_positions = brute_force(feats, queries, 10)
    assert scores.dtype == np.float32 and positions.dtype == np.int64
    np.testing.assert_array_equal(positions, want_positions)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert index.ntotal == 300
    assert (tmp_path / "s.h5.test%2Fenc.train.Flat.faiss").is_file()
    assert (tmp_path / "s.h5.test%2Fenc.train.Flat.json").is_file()
    assert not [p for p in tmp_path.iterdir() if "|" in p.name]


def test_reload_is_identical_and_sidecar_ties_index_to_store(tmp_path: Path) -> None:
    path, _ = random_store(tmp_path, 300)
    queries = np.random.default_rng(2).normal(size=(5, 16))
    built = build_index(path, ENC, "train", quiet=True)
    faiss_path, json_path = index_paths(path, ENC, "train")
    mtime = faiss_path.stat().st_mtime_ns
    loaded = load_index(path, ENC, "train", rebuild_stale=False)
    assert faiss_path.stat().st_mtime_ns == mtime
    for a, b in zip(built.search(queries, 7), loaded.search(queries, 7)):
        np.testing.assert_array_equal(a, b)
    meta = json.loads(json_path.read_text())
    ids = default_ids("train", 300)
    assert meta["store"] == str(path.resolve())
    assert (meta["encoder"], meta["split"], meta["factory"], meta["ntotal"]) == (ENC, "train", "Flat", 300)
    assert meta["weights"] == "test-weights"
    assert meta["ids_sha1"] == hashlib.sha1("\n".join(ids).encode()).hexdigest()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_added_rows_make_index_stale(tmp_path: Path) -> None:
    path, feats = random_store(tmp_path, 300)
    build_index(path, ENC, "train", quiet=True)
    more = np.random.default_rng(3).normal(size=(40, 16)).astype(np.float32)
    make_feature_store(path, {"train": more}, ids={"train": [f"new-{i}" for i in range(40)]})
    with pytest.raises(FeatureStoreError, match="stale"):
        load_index(path, ENC, "train", rebuild_stale=False)
    index = load_index(path, ENC, "train", quiet=True)
    assert index.ntotal == 340
    queries = more[:4] + 0.01
    _, positions = index.search(queries, 5)
    np.testing.assert_array_equal(positions, brute_force(np.vstack([feats, more]), queries, 5)[1])
    assert load_index(path, ENC, "train", rebuild_stale=False).ntotal == 340


def test_other_weights_or_missing_index(tmp_path: Path) -> None:
    path, _ = random_store(tmp_path, 50)
    with pytest.raises(NotFoundError):
        load_index(path, ENC, "train", rebuild_stale=False)
    assert load_index(path, ENC, "train", quiet=True).ntotal == 50
    _, json_path = index_paths(path, ENC, "train")
    meta = json.loads(json_path.read_text())
    json_path.write_text(json.dumps({**meta, "weights": "older-weights"}))
    with pytest.raises(FeatureStoreError, match="stale.*weights"):
        load_index(path, ENC, "train", rebuild_stale=False)
    load_index(path, ENC, "train", quiet=True)
    assert json.loads(json_path.read_text())["weights"] == "test-weights"


def test_invalid_rows_are_not_indexed(tmp_path: Path) -> None:
    bad = [3, 10, 57]
    labels = list(range(100))
    path, feats = random_store(tmp_path, 100, labels={"train": labels}, invalid={"train": bad})
    good = [i for i in range(100) if i not in bad]
    good_ids = [default_ids("train", 100)[i] for i in good]
    index = build_index(path, ENC, "train", quiet=True)
    assert index.ntotal == 97
    queries = feats[bad]
    hits = index.hits(path, "train", queries, 3)
    _, want = brute_force(feats[good], queries, 3)
    for row_hits, row_want in zip(hits, want):
        assert [h["id"] for h in row_hits] == [good_ids[p] for p in row_want]
        assert [h["label"] for h in row_hits] == [good[p] for p in row_want]
        assert [h["path"] for h in row_hits] == [f"train/{good_ids[p]}.jpg" for p in row_want]
    with pytest.raises(ProvenanceError):
        index.hits(path, "test", queries, 3)


def test_ivf_with_all_lists_is_exact_and_hnsw_recall(tmp_path: Path) -> None:
    path, feats = random_store(tmp_path, 2000)
    queries = np.random.default_rng(4).normal(size=(30, 16)).astype(np.float32)
    want_scores, want = brute_force(feats, queries, 10)
    ivf = build_index(path, ENC, "train", "IVF4,Flat", train_size=500, quiet=True)
    scores, positions = ivf.search(queries, 10, nprobe=4)
    np.testing.assert_array_equal(positions, want)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert recall_at_k(positions, want, 10) == 1.0
    assert recall_at_k(ivf.search(queries, 10, nprobe=1)[1], want, 10) < 1.0
    hnsw = build_index(path, ENC, "train", "HNSW32", quiet=True)
    assert recall_at_k(hnsw.search(queries, 10)[1], want, 10) > 0.9
    assert set(hnsw.meta["search_params"]) == {"efSearch"}
    reloaded = load_index(path, ENC, "train", "IVF4,Flat", rebuild_stale=False)
    assert reloaded.search(queries, 10, nprobe=4)[1].tolist() == want.tolist()


def test_user_errors(tmp_path: Path) -> None:
    path, _ = random_store(tmp_path, 300)
    with pytest.raises(FeatureStoreError, match="NotAFactory42"):
        build_index(path, ENC, "train", "NotAFactory42", quiet=True)
    with pytest.raises(FeatureStoreError, match="512 IVF lists.*300 valid rows"):
        build_index(path, ENC, "train", "IVF512,Flat", quiet=True)
    with pytest.raises(NotFoundError):
        build_index(path, "no/such", "train", quiet=True)
    flat = build_index(path, ENC, "train", quiet=True)
    with pytest.raises(FeatureStoreError, match="nprobe"):
        flat.search(np.ones((1, 16)), 3, nprobe=2)
    with pytest.raises(ProvenanceError, match="dim 16"):
        flat.search(np.ones((1, 8)), 3)


def test_k_is_clamped_and_missing_neighbours_are_padded(tmp_path: Path) -> None:
    path, feats = random_store(tmp_path, 300)
    scores, positions = build_index(path, ENC, "train", quiet=True).search(feats[:2], 1000)
    want_scores, want = brute_force(feats, feats[:2], 300)
    assert positions.shape == (2, 300)
    np.testing.assert_array_equal(positions, want)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    scores, positions = build_index(path, ENC, "train", "IVF4,Flat", quiet=True).search(feats[:2], 300, nprobe=1)
    for row_scores, row in zip(scores, positions):
        found = row >= 0
        assert 0 < found.sum() < 300 and found[: found.sum()].all()
        assert np.isneginf(row_scores[~found]).all() and np.isfinite(row_scores[found]).all()
        assert set(row[found]) <= set(range(300))


def test_recall_at_k_hand_computed() -> None:
    exact = np.array([[0, 1, 2], [3, 4, 5]])
    approx = np.array([[2, 9, 0], [5, -1, -1]])
    assert recall_at_k(approx, exact, 3) == pytest.approx(3 / 6)
    assert recall_at_k(approx, exact, 1) == pytest.approx(0 / 2)


def test_import_does_not_load_faiss() -> None:
    code = "import sys, featurestore.index.store_index; print('faiss' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert out.stdout.strip() == "False"


def test_exact_topk_streams_chunks(tmp_path: Path) -> None:
    from featurestore.index.store_index import exact_topk

    X = np.random.default_rng(5).normal(size=(1500, 16)).astype(np.float32)
    path = make_feature_store(tmp_path / "s.h5", {"pool": X})
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    with FeatureStore(path) as store:
        exact = exact_topk(store, ENC, "pool", Xn[:5], 7, chunk_rows=128)
        first = exact_topk(store, ENC, "pool", Xn[:5], 3, chunk_rows=100, n=700)
    np.testing.assert_array_equal(exact, np.argsort(-(Xn[:5] @ Xn.T), axis=1)[:, :7])
    np.testing.assert_array_equal(first, np.argsort(-(Xn[:5] @ Xn[:700].T), axis=1)[:, :3])


def test_a_flipped_bit_in_the_index_file_is_one_line_in_search_and_verify(tmp_path: Path, capsys) -> None:
    from tests.cli_runner import run

    path, feats = random_store(tmp_path, 300)
    build_index(path, ENC, "train", quiet=True)
    faiss_path, json_path = index_paths(path, ENC, "train")
    assert json.loads(json_path.read_text())["sha256"] == hashlib.sha256(faiss_path.read_bytes()).hexdigest()
    data = bytearray(faiss_path.read_bytes())
    data[len(data) // 2] ^= 0x04  # inside the stored vectors: FAISS reads it without complaint
    faiss_path.write_bytes(bytes(data))
    with pytest.raises(FeatureStoreError, match="is damaged: .* differs from the SHA-256 recorded"):
        load_index(path, ENC, "train")  # refused, not rebuilt behind the user's back
    code, out, err = run(["search", "--store", path, "--split", "train", "--id", "train-00001"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"index {faiss_path.name} is damaged" in err and "rebuild it: fs index --store" in err
    code, out, err = run(["verify", "--store", path], capsys)
    assert code == 2
    assert [line for line in out.splitlines() if line.startswith("damaged:")] == [
        f"damaged: index {faiss_path.name} is damaged: {faiss_path.name} differs from the SHA-256 recorded when it "
        f"was built; rebuild it: fs index --store {path} --encoder {ENC} --split train --factory Flat"]
    code, out, err = run(["index", "--store", path, "--split", "train", "--factory", "Flat", "-q"], capsys)
    assert code == 0, err
    code, out, _ = run(["verify", "--store", path], capsys)
    assert code == 0 and "damaged" not in out


def test_an_index_without_a_recorded_digest_is_rebuilt(tmp_path: Path) -> None:
    path, _ = random_store(tmp_path, 200)
    build_index(path, ENC, "train", quiet=True)
    _, json_path = index_paths(path, ENC, "train")
    meta = json.loads(json_path.read_text())
    del meta["sha256"]  # as written before index files were checksummed
    json_path.write_text(json.dumps(meta))
    with pytest.raises(FeatureStoreError, match="records no checksum"):
        load_index(path, ENC, "train", rebuild_stale=False)
    assert load_index(path, ENC, "train", quiet=True).ntotal == 200
    assert "sha256" in json.loads(json_path.read_text())

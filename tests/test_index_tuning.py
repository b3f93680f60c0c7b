"""Indexes chosen from a memory budget and tuned to a recall target (issue 18), checked against
brute-force NumPy search, hand-computed sizes and the files a killed build leaves."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featurestore.errors import FeatureStoreError
from featurestore.index.files import index_paths, remove_leftovers
from featurestore.index.plan import choose_factory, estimate_memory, ivf_lists, parse_duration, parse_memory
from featurestore.index.store_index import build_index, index_names, load_index, recall_at_k
from featurestore.index.tuning import ladder
from tests.cli_runner import run
from tests.store_fixtures import make_feature_store

ENC = "test/enc"
ROOT = Path(__file__).resolve().parents[1]


def clustered(n: int, d: int = 32, clusters: int = 40, latent: int = 8, seed: int = 0, draw: int = 0) -> np.ndarray:
    """Rows in many overlapping clusters of a low-dimensional subspace, plus a little noise;
    another ``draw`` gives new rows of the same clusters (unseen queries)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, latent)))[0].T
    centers = rng.standard_normal((clusters, latent))
    rng = np.random.default_rng([seed, draw])
    z = centers[rng.integers(clusters, size=n)] + 0.7 * rng.standard_normal((n, latent))
    return (z @ basis + 0.05 * rng.standard_normal((n, d))).astype(np.float32)


def index_files(folder: Path) -> list[str]:
    """Names of the index files, sidecars and temporary files in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".faiss", ".json", ".tmp")))


def unseen_recall(X: np.ndarray, queries: np.ndarray, positions: np.ndarray, k: int = 10) -> float:
    """recall@k of ``positions`` against the NumPy cosine top-k of ``queries`` among the rows ``X``."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    sims = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ Xn.T
    return recall_at_k(positions, np.argsort(-sims, axis=1, kind="stable")[:, :k], k)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[Path, np.ndarray]:
    X = clustered(4000)
    return make_feature_store(tmp_path_factory.mktemp("pool") / "s.h5", {"pool": X}), X


def test_memory_and_duration_parsing() -> None:
    assert parse_memory("2G") == 2 * 2**30 and parse_memory("512M") == 512 * 2**20
    assert parse_memory("1.5GB") == int(1.5 * 2**30) and parse_memory(1000) == 1000
    assert parse_duration("10m") == 600 and parse_duration("90s") == 90 and parse_duration("1.5h") == 5400
    for bad in ("two gigs", "0G", "-1M"):
        with pytest.raises(FeatureStoreError):
            parse_memory(bad)
    with pytest.raises(FeatureStoreError):
        parse_duration("soon")


def test_choice_follows_the_budget_hand_computed() -> None:
    # Flat at 50k x 512 is 50,000 * 2,048 B = 97.7 MiB: exact under a 2G budget
    assert choose_factory(50_000, 512, "2G") == "Flat"
    # ... but not under 64M. 4 sqrt(50k) = 894 -> 1024 lists (1024 x 512 float centroids = 2 MiB).
    # Per row: 8 B list id + 8 B id-map position + 64 B of PQ128x4 codes + re-ranking copy: float32
    # 2048 B (106 MB in all, no), float16 1024 B (55.2 MB + 2 MiB = 57.3 MB, x1.05 = 60.2 MB
    # < 64 MiB = 67.1 MB: yes)
    assert choose_factory(50_000, 512, "64M") == "IVF1024,PQ128x4fs,Refine(SQfp16)"
    assert choose_factory(50_000, 512, "40M") == "IVF1024,PQ128x4fs,Refine(SQ8)"
    # 100k rows is past the exact limit whatever the budget; float32 re-ranking fits 2G
    assert choose_factory(100_000, 512, "2G") == "IVF1024,PQ128x4fs,RFlat"
    # 1M rows: 4 sqrt(n) = 4000 -> 4096 lists, an HNSW coarse quantiser; in 1 GiB the float16
    # copy (1M x 1104 B = 1.104e9 B > 2^30) does not fit, the 8-bit one does
    assert choose_factory(1_000_000, 512, "1G") == "IVF4096_HNSW32,PQ128x4fs,Refine(SQ8)"
    assert choose_factory(1_000_000, 512, "100M") == "IVF4096_HNSW32,PQ128x4fs"
    with pytest.raises(FeatureStoreError, match="raise --max-memory"):
        choose_factory(1_000_000, 512, "1M")
    # with a GPU: what FAISS runs there (flat coarse quantiser, 8-bit codes, no re-ranking);
    # IVF4096,SQ8 at 1M is 4096 x 2 KiB + 1M x (512 + 16) B = 536 MB
    assert choose_factory(1_000_000, 512, "1G", gpu=True) == "IVF4096,SQ8"
    assert choose_factory(1_000_000, 512, "100M", gpu=True) == "IVF4096,PQ64"
    assert choose_factory(1_000_000, 512, "60M", gpu=True) == "IVF4096,PQ32"  # 1M x 48 B + 8 MiB, x1.05 = 56.5 MiB
    assert ivf_lists(100) == 2 and ivf_lists(1_000_000) == 4096  # 40 training rows per list at most
    assert estimate_memory("IVF1024,PQ128x4fs,RFlat", 100_000, 512) == 1024 * 512 * 4 + 100_000 * (8 + 8 + 64 + 2048)


def test_estimate_is_close_to_the_saved_size(pool) -> None:
    path, X = pool
    index = build_index(path, ENC, "pool", "IVF16,PQ8x4fs,Refine(SQ8)", recall=0.5, quiet=True)
    estimate = estimate_memory("IVF16,PQ8x4fs,Refine(SQ8)", len(X), X.shape[1])
    assert index.meta["bytes"] == index.path.stat().st_size
    assert 0.8 < index.meta["bytes"] / estimate < 1.25


def test_query_recalls_and_lower_bound_hand_computed() -> None:
    from featurestore.index.tuning import Z_95, query_recalls, tune

    exact = np.array([[0, 1], [2, 3], [4, 5], [6, 7]])
    approx = np.array([[1, 0], [2, 9], [8, 9], [7, -1]])
    np.testing.assert_allclose(query_recalls(approx, exact, 2), [1.0, 0.5, 0.0, 0.5])
    # one setting, no knobs: mean 0.5, sd 0.4082, lower bound 0.5 - 1.645 x 0.4082 / 2 = 0.1642
    params, tried, met = tune({}, lambda p: None, lambda q, k: approx, np.zeros((4, 2)), exact, target=0.3)
    assert not met and tried[0]["recall"] == 0.5
    assert tried[0]["recall_lower"] == pytest.approx(0.5 - Z_95 * np.std([1, 0.5, 0, 0.5], ddof=1) / 2)
    assert tune({}, lambda p: None, lambda q, k: approx, np.zeros((4, 2)), exact, target=0.15)[2]


def test_ladder() -> None:
    assert ladder(100) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 100]
    assert ladder(64, start=10) == [12, 16, 24, 32, 48, 64]


def test_tuned_nprobe_meets_the_target_on_rows_it_was_not_tuned_on(pool) -> None:
    path, X = pool
    index = build_index(path, ENC, "pool", "IVF64,Flat", recall=0.9, tune_queries=300, quiet=True)
    meta = index.meta
    nprobe = meta["search_params"]["nprobe"]
    assert meta["target_met"] and meta["recall_at_10"] >= 0.9 and not meta["tuning_queries_in_training_sample"]
    assert meta["tuning_queries"] == 300 and index.ntotal == len(X)
    assert 1 < nprobe < 64
    # smallest: every smaller nprobe tried fell short, and nprobe - 1 was tried (bisection)
    # the target is met by the 95% lower confidence bound over the 300 queries: recomputed here
    tried = {r["params"]["nprobe"]: r["recall_lower"] for r in meta["tuning"]}
    assert meta["recall_lower_95"] >= 0.9 and tried[nprobe - 1] < 0.9
    assert all(r < 0.9 for p, r in tried.items() if p < nprobe)
    # independent check: 600 unseen queries from the same clusters against NumPy brute force
    queries = clustered(600, draw=1)
    _, positions = load_index(path, ENC, "pool", "IVF64,Flat", rebuild_stale=False).search(queries, 10)
    assert unseen_recall(X, queries, positions) >= 0.9 - 0.03  # 6000 neighbours: sampling sd ~0.005
    _, fewer = index.search(queries, 10, nprobe=max(1, nprobe // 3))
    assert unseen_recall(X, queries, fewer) < unseen_recall(X, queries, positions)


def test_refine_tunes_nprobe_then_k_factor(pool) -> None:
    path, X = pool
    index = build_index(path, ENC, "pool", "IVF32,PQ8x4fs,RFlat", recall=0.9, tune_queries=300, quiet=True)
    params = index.meta["search_params"]
    assert set(params) == {"nprobe", "k_factor"} and index.meta["target_met"]
    tried = [r for r in index.meta["tuning"] if r["params"]["nprobe"] == params["nprobe"]]
    assert all(r["recall_lower"] < 0.9 for r in tried if r["params"]["k_factor"] < params["k_factor"])
    queries = clustered(500, draw=2)
    assert unseen_recall(X, queries, index.search(queries, 10)[1]) >= 0.9 - 0.03


def test_unreachable_target_is_one_note_and_the_best_index_is_kept(pool, capsys) -> None:
    path, X = pool
    code, out, err = run(["index", "--store", path, "--encoder", ENC, "--split", "pool", "--factory",
                          "IVF16,PQ2x4fs", "--recall", "0.999", "-q"], capsys)
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: recall@10 target 0.999 not met: best")
    index = load_index(path, ENC, "pool", "IVF16,PQ2x4fs", rebuild_stale=False)
    meta = index.meta
    best = max(meta["tuning"], key=lambda r: (r["recall_lower"], r["qps"]))
    assert not meta["target_met"] and meta["search_params"] == best["params"]
    assert "indexed 4000 rows" in out


def test_hnsw_ef_search_is_tuned_and_applied_on_load(pool) -> None:
    path, X = pool
    built = build_index(path, ENC, "pool", "HNSW8", recall=0.97, tune_queries=200, quiet=True)
    ef = built.meta["search_params"]["efSearch"]
    loaded = load_index(path, ENC, "pool", "HNSW8", rebuild_stale=False)
    assert faiss_downcast(loaded.index).hnsw.efSearch == ef >= 10
    queries = clustered(300, draw=3)
    assert unseen_recall(X, queries, loaded.search(queries, 10)[1]) >= 0.97 - 0.03


def faiss_downcast(index):
    """The index inside the id map an approximate index is saved with."""
    import faiss

    return faiss.downcast_index(faiss.downcast_index(index).index)


def test_sidecar_round_trip_and_stale_auto_rebuild_keeps_its_options(tmp_path) -> None:
    X = clustered(3000, seed=1)
    path = make_feature_store(tmp_path / "s.h5", {"pool": X})
    built = build_index(path, ENC, "pool", "auto", max_memory="200K", recall=0.9, tune_queries=200, quiet=True)
    faiss_path, json_path = index_paths(path, ENC, "pool", "auto")
    assert built.path == faiss_path and faiss_path.name == "s.h5.test%2Fenc.pool.auto.faiss"
    assert built.meta["factory"].startswith("IVF") and built.meta["name"] == "auto"  # Flat (384 KB) > 200K
    meta = json.loads(json_path.read_text())
    assert meta == built.meta
    loaded = load_index(path, ENC, "pool", None, rebuild_stale=False)  # the auto index is the default
    assert loaded.meta == meta and loaded.params == meta["search_params"]
    queries = X[:20]
    for a, b in zip(built.search(queries, 10), loaded.search(queries, 10)):
        np.testing.assert_array_equal(a, b)
    assert index_names(path, ENC, "pool") == ["auto"]
    make_feature_store(path, {"pool": clustered(100, seed=2)}, ids={"pool": [f"new-{i}" for i in range(100)]})
    with pytest.raises(FeatureStoreError, match="stale.*3100 valid rows"):
        load_index(path, ENC, "pool", "auto", rebuild_stale=False)
    rebuilt = load_index(path, ENC, "pool", "auto", quiet=True)
    assert rebuilt.ntotal == 3100
    assert rebuilt.meta["request"]["max_memory"] == 200 * 1024 and rebuilt.meta["recall_target"] == 0.9


def test_index_files_take_the_store_permissions(tmp_path) -> None:
    path = make_feature_store(tmp_path / "s.h5", {"pool": clustered(300)})
    os.chmod(path, 0o640)
    build_index(path, ENC, "pool", quiet=True)
    for file in index_paths(path, ENC, "pool"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o640


def test_max_build_stops_cleanly(tmp_path) -> None:
    path = make_feature_store(tmp_path / "s.h5", {"pool": clustered(2000)})
    with pytest.raises(FeatureStoreError, match="max-build.*nothing was written"):
        build_index(path, ENC, "pool", "IVF16,Flat", max_build=1e-9, quiet=True)
    assert not index_files(tmp_path)


KILLED_BUILD = """
import os, signal, sys
import faiss
from featurestore.index.store_index import build_index
real = faiss.write_index
def write_then_die(index, target):  # a file name, or a writer over a Python file object
    real(index, target)
    if isinstance(target, str):
        with open(target, "r+b") as f:
            f.truncate(100)
    os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is left, unflushed or cut short
faiss.write_index = write_then_die
build_index(sys.argv[1], "test/enc", "pool", "IVF8,Flat", quiet=True)
"""


def test_a_killed_build_leaves_no_index_and_its_temp_files_are_cleaned(tmp_path) -> None:
    path = make_feature_store(tmp_path / "s.h5", {"pool": clustered(1000)})
    done = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(path)], cwd=ROOT, capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == -signal.SIGKILL
    left = index_files(tmp_path)
    assert len(left) == 1 and left[0].startswith(".s.h5.test%2Fenc.pool.IVF8_Flat.faiss.") and left[0].endswith(".tmp")
    # a temp file of a live process (a build in progress elsewhere) is not touched
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".s.h5.test%2Fenc.pool.Flat.faiss.{sleeper.pid}.abc123.tmp"
        live.write_bytes(b"x")
        index = load_index(path, ENC, "pool", "IVF8,Flat", quiet=True)  # missing: built, leftovers removed
        assert index.ntotal == 1000
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == [live.name]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_leftovers(path) == [live]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # featurestore 0.1 named no process: its leftovers go once an hour old
    old = tmp_path / ".s.h5.test|enc.pool.Flat.faiss.k3j_x9.tmp"
    fresh = tmp_path / ".s.h5.test|enc.pool.Flat.json.q1w2.tmp"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(old, (old.stat().st_atime, old.stat().st_mtime - 7200))
    assert remove_leftovers(path) == [old] and fresh.exists()


def test_cli_auto_report_search_and_info(tmp_path, capsys) -> None:
    X = clustered(3000, seed=4)
    path = make_feature_store(tmp_path / "s.h5", {"pool": X})
    args = ["index", "--store", path, "--encoder", ENC, "--split", "pool", "--factory", "auto",
            "--max-memory", "300K", "--recall", "0.9", "--max-build", "10m", "-q"]
    code, out, err = run(args, capsys)
    assert code == 0 and err == "" and "recall@10 0.9" in out
    meta = json.loads(index_paths(path, ENC, "pool", "auto")[1].read_text())
    mtime = index_paths(path, ENC, "pool", "auto")[0].stat().st_mtime_ns
    code, out, err = run(args + ["--report"], capsys)
    assert code == 0 and index_paths(path, ENC, "pool", "auto")[0].stat().st_mtime_ns == mtime  # not rebuilt
    assert f"factory   {meta['factory']} (auto, budget 300.00 KiB)" in out
    nprobe = meta["search_params"]["nprobe"]
    assert any(line.split()[0].rstrip(",") == f"nprobe={nprobe}" for line in out.splitlines() if line.startswith("  "))
    assert "memory " in out and "build " in out and "q/s" in out
    # fs search (no --factory) serves the auto index with its tuned nprobe
    code, out, err = run(["search", "--store", path, "--encoder", ENC, "--split", "pool", "--id", "pool-00007",
                          "-k", "5", "--json"], capsys)
    assert code == 0, err
    hits = [h["id"] for h in json.loads(out)[0]["hits"]]
    expected = load_index(path, ENC, "pool", "auto", rebuild_stale=False).search(X[7:8], 5)[1][0]
    assert hits == [f"pool-{p:05d}" for p in expected]
    code, out, err = run(["info", "--store", path], capsys)
    assert code == 0 and f"nprobe={nprobe}" in out and "recall@10" in out and "auto" in out
    code, out, err = run(["index", "--store", path, "--encoder", ENC, "--split", "pool", "--max-memory", "lots"],
                         capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "lots" in err


class FakeGpus:
    """faiss seen through one fake GPU: the "GPU copy" is a CPU clone, so the GPU code path runs."""

    def __init__(self, monkeypatch) -> None:
        import faiss

        self.moved = 0
        monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
        monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", self.to_gpu)
        monkeypatch.setattr(faiss, "index_gpu_to_cpu", faiss.clone_index)

        class Space(faiss.ParameterSpace):
            pass

        monkeypatch.setattr(faiss, "GpuParameterSpace", Space, raising=False)

    def to_gpu(self, index):
        import faiss

        self.moved += 1
        return faiss.clone_index(index)


def test_gpu_code_path_gives_the_cpu_results(pool, monkeypatch) -> None:
    path, X = pool
    cpu = build_index(path, ENC, "pool", "IVF32,Flat", recall=0.9, tune_queries=200, quiet=True)
    queries = X[:50] + 0.01
    want = cpu.search(queries, 10)
    gpus = FakeGpus(monkeypatch)
    gpu = build_index(path, ENC, "pool", "IVF32,Flat", recall=0.9, tune_queries=200, quiet=True)
    assert gpus.moved >= 2 and gpu.on_gpu  # built on the GPU copy, searched on one
    assert gpu.meta["search_params"] == cpu.meta["search_params"]
    for a, b in zip(want, gpu.search(queries, 10)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_knn_gpu_code_path_gives_the_cpu_results(monkeypatch) -> None:
    from solvers.few_shot.knn import KNN

    X = clustered(600, seed=5)
    y = np.arange(600) % 4
    want = KNN(k=7).fit(X, y).kneighbors(X[:40])
    gpus = FakeGpus(monkeypatch)
    got = KNN(k=7).fit(X, y).kneighbors(X[:40])
    assert gpus.moved >= 1
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)


def test_real_gpu_gives_the_cpu_results(pool) -> None:
    import faiss

    if faiss.get_num_gpus() == 0:
        pytest.skip("no GPU: faiss.get_num_gpus() == 0 (the GPU code path is checked with a fake GPU above)")
    path, X = pool
    gpu = build_index(path, ENC, "pool", "IVF32,Flat", recall=0.9, tune_queries=200, quiet=True)
    assert gpu.on_gpu
    cpu_positions = faiss.clone_index(gpu.index).search(np.ascontiguousarray(X[:50] / np.linalg.norm(
        X[:50], axis=1, keepdims=True)), 10)[1]
    assert recall_at_k(gpu.search(X[:50], 10)[1], cpu_positions, 10) >= 0.99


@pytest.mark.parametrize("factory", ["IVF16,PQ2", "PQ2", "OPQ2_16,IVF16,PQ2,RFlat"])
def test_pq_indexes_skip_polysemous_training_and_search_the_same(factory) -> None:
    """FAISS's default polysemous training only permutes the PQ codes (for polysemous search, never
    used): the index fs builds must give the same neighbours and distances without it."""
    import faiss

    from featurestore.index.store_index import _make_index

    def pq_part(index):
        ivf = faiss.try_extract_index_ivf(index)
        return faiss.downcast_index(ivf) if ivf is not None else faiss.downcast_index(index)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 16)).astype(np.float32)  # 2 sub-quantizers: the default training stays short
    faiss.normalize_L2(X)
    ours, default = _make_index(factory, 16), faiss.index_factory(16, factory, faiss.METRIC_INNER_PRODUCT)
    assert pq_part(ours).do_polysemous_training is False and pq_part(default).do_polysemous_training is True
    annealing = faiss.PolysemousTraining()  # FAISS's training with a shorter annealing (the test's time)
    annealing.n_iter, annealing.n_redo = 20000, 1
    pq_part(default).polysemous_training = annealing
    for index in (ours, default):
        np.random.seed(0)
        index.train(X)
        index.add(X)
        if faiss.try_extract_index_ivf(index) is not None:
            faiss.extract_index_ivf(index).nprobe = 4
    D1, I1 = ours.search(X[:200], 10)
    D2, I2 = default.search(X[:200], 10)
    np.testing.assert_allclose(D1, D2, rtol=1e-5, atol=1e-6)
    assert (I1 == I2).mean() > 0.99  # equal up to exact distance ties


def test_estimate_counts_a_leading_rotation_and_its_output_dimension(pool) -> None:
    # OPQ128_256 on 512-d rows: a 512 x 256 float matrix, then 256-d IVF centroids and codes
    assert estimate_memory("OPQ128_256,IVF1024,PQ128x4fs", 100_000, 512) == (
        512 * 256 * 4 + 1024 * 256 * 4 + 100_000 * (8 + 8 + 64))
    expected = 512 * 512 * 4 + 1024 * 512 * 4 + 100_000 * (8 + 8 + 64)
    assert estimate_memory("OPQ64,IVF1024,PQ64", 100_000, 512) == expected
    assert estimate_memory("PCA64,Flat", 1000, 512) == 512 * 64 * 4 + 1000 * (8 + 64 * 4)
    path, X = pool
    index = build_index(path, ENC, "pool", "OPQ8_32,IVF16,PQ8x4fs,Refine(SQ8)", recall=0.5, quiet=True)
    estimate = estimate_memory("OPQ8_32,IVF16,PQ8x4fs,Refine(SQ8)", len(X), X.shape[1])
    assert 0.8 < index.meta["bytes"] / estimate < 1.25

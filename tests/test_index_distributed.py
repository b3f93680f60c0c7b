"""The cluster index build (Dask workers add row ranges; FAISS merges their lists on disk)
against the one-process build, and searching its memory-mapped lists."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("distributed")

from featurestore.errors import FeatureStoreError
from featurestore.index.distributed import build_index_distributed
from featurestore.index.plan import choose_factory
from featurestore.index.store_index import build_index, index_paths, load_index
from tests.cli_runner import run
from tests.store_fixtures import make_feature_store

ENC = "test/enc"
ROWS = 200_000
DIM = 32
INVALID = [3, 70_001, 123_456, ROWS - 1]  # gaps: FAISS ids are positions among the valid rows


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    from featurestore.cluster import dask_client

    with dask_client("local:4") as dask:  # 4 processes, one thread (and one OpenMP thread) each here
        yield dask


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(64, DIM))
    feats = (centres[rng.integers(0, 64, ROWS)] + 0.6 * rng.normal(size=(ROWS, DIM))).astype(np.float32)
    path = make_feature_store(tmp_path_factory.mktemp("dist") / "s.h5", {"train": feats},
                              invalid={"train": INVALID})
    return path, np.delete(feats, INVALID, axis=0)


def test_cluster_build_returns_the_same_neighbours_as_one_process(big_store, client) -> None:
    import faiss

    path, _ = big_store
    factory = "IVF64,PQ32x4"
    options: dict[str, Any] = {"recall": 0.6, "seed": 7, "chunk_rows": 25_000, "tune_queries": 500, "quiet": True}
    one = build_index(path, ENC, "train", factory, **options)
    one_meta = dict(one.meta)
    dist = build_index_distributed(path, ENC, "train", factory, client=client, task_rows=50_000, **options)
    assert dist.meta["cluster"] == {"tasks": 4, "task_rows": 50_000, "workers": 4}
    assert dist.ntotal == one.ntotal == ROWS - len(INVALID)
    assert one_meta["target_met"]  # met: the setting kept is the smallest that meets it, not a timing's pick
    for key in ("train_rows", "search_params", "recall_at_10", "tuning_queries", "target_met"):
        assert dist.meta[key] == one_meta[key], key
    queries = np.random.default_rng(1).normal(size=(300, DIM)).astype(np.float32)
    for nprobe in (None, 1, 16):
        s1, p1 = one.search(queries, 10, nprobe=nprobe)
        s2, p2 = dist.search(queries, 10, nprobe=nprobe)
        np.testing.assert_array_equal(p2, p1)
        np.testing.assert_array_equal(s2, s1)
    # every valid row is in the merged lists exactly once, under its own position
    lists: Any = faiss.extract_index_ivf(dist.index).invlists
    ids = np.concatenate([faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                          for i in range(lists.nlist)])
    np.testing.assert_array_equal(np.sort(ids), np.arange(ROWS - len(INVALID)))
    faiss_path, json_path = index_paths(path, ENC, "train", factory)
    assert faiss_path.with_suffix(".ivfdata").is_file()
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    meta = json.loads(json_path.read_text())
    assert meta["ivfdata"] == faiss_path.with_suffix(".ivfdata").name and len(meta["ivfdata_sha256"]) == 64


def test_loaded_on_disk_index_keeps_its_lists_memory_mapped(big_store, client) -> None:
    import faiss
    import psutil  # type: ignore[import-untyped]

    path, valid_feats = big_store
    build_index_distributed(path, ENC, "train", "IVF64,Flat", client=client, recall=0.9, task_rows=70_000,
                            chunk_rows=35_000, tune_queries=200, quiet=True)
    faiss_path, _ = index_paths(path, ENC, "train", "IVF64,Flat")
    lists_bytes = faiss_path.with_suffix(".ivfdata").stat().st_size
    assert lists_bytes > (ROWS - len(INVALID)) * DIM * 4  # the float vectors, and their ids
    process = psutil.Process()
    before = process.memory_info().rss
    index = load_index(path, ENC, "train", "IVF64,Flat", rebuild_stale=False)
    grown = process.memory_info().rss - before
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index.index).invlists)  # type: ignore[arg-type]
    assert isinstance(lists, faiss.OnDiskInvertedLists)
    assert grown < lists_bytes / 4, (grown, lists_bytes)
    queries = valid_feats[:5]
    _, positions = index.search(queries, 3, nprobe=64)  # all lists: exact
    np.testing.assert_array_equal(positions[:, 0], np.arange(5))


def test_fs_index_on_a_cluster_and_fs_info_memory_line(tmp_path, capsys) -> None:
    import faiss

    small = make_feature_store(tmp_path / "c.h5",
                               {"train": np.random.default_rng(3).normal(size=(6000, 16)).astype(np.float32)})
    code, out, err = run(["index", "--store", small, "--split", "train", "--factory", "IVF16,SQ8",
                          "--cluster", "local:2", "--recall", "0.9", "-q"], capsys)
    assert code == 0, err
    assert "of inverted lists on disk (memory-mapped)" in out
    code, out, err = run(["info", "--store", small], capsys)
    assert code == 0, err
    line = next(li for li in out.splitlines() if ".IVF16_SQ8.faiss" in li)
    assert "in RAM + " in line and "of inverted lists on disk (memory-mapped)" in line
    code, out, err = run(["search", "--store", small, "--split", "train", "--id", "train-00000",
                          "--factory", "IVF16,SQ8", "--json", "-k", "1"], capsys)
    assert code == 0, err
    assert json.loads(out)[0]["hits"][0]["id"] == "train-00000"  # stdout is JSON only: FAISS's lines kept out
    from featurestore.server.searcher import StoreSearcher  # what fs serve answers from

    searcher = StoreSearcher(str(small), ENC, factory="IVF16,SQ8", quiet=True)
    try:
        lists = faiss.extract_index_ivf(searcher.split("train").index.index).invlists
        assert isinstance(faiss.downcast_InvertedLists(lists), faiss.OnDiskInvertedLists)  # type: ignore[arg-type]
        assert searcher.search_id("train-00042", 3)["hits"][0]["id"] == "train-00042"
        memory = searcher.info()["splits"][0]["index_bytes"]
        assert memory["on_disk"] == small.with_name("c.h5.test%2Fenc.train.IVF16_SQ8.ivfdata").stat().st_size
    finally:
        searcher.close()


def test_fast_scan_and_refine_factories_are_refused_in_one_line(big_store, client) -> None:
    path, _ = big_store
    for factory, why in (("IVF64,PQ8x4fs", "fast-scan"), ("IVF64,PQ8,RFlat", "re-ranking"), ("HNSW32", "IVF")):
        with pytest.raises(FeatureStoreError, match=why) as caught:
            build_index_distributed(path, ENC, "train", factory, client=client, quiet=True)
        assert "\n" not in str(caught.value)


def test_auto_chooses_a_factory_faiss_keeps_on_disk() -> None:
    assert choose_factory(10_000, 512, on_disk=True) == "IVF128,SQ8"  # never Flat: no lists to keep on disk
    assert choose_factory(1_000_000, 512, on_disk=True) == "IVF4096_HNSW32,SQ8"
    # 1M x (32 + 16) B + 4096 x 2 KiB centroids + HNSW links: PQ32 fits 60M, SQ8 (528 MB) does not
    assert choose_factory(1_000_000, 512, "60M", on_disk=True) == "IVF4096_HNSW32,PQ32"


def test_a_flipped_bit_in_the_lists_file_is_one_line_in_search_and_verify(tmp_path, capsys) -> None:
    path = make_feature_store(tmp_path / "s.h5",
                              {"train": np.random.default_rng(4).normal(size=(4000, 16)).astype(np.float32)})
    code, _, err = run(["index", "--store", path, "--split", "train", "--factory", "IVF8,Flat",
                        "--cluster", "local:1", "-q"], capsys)
    assert code == 0, err
    ivfdata = index_paths(path, ENC, "train", "IVF8,Flat")[0].with_suffix(".ivfdata")
    data = bytearray(ivfdata.read_bytes())
    data[len(data) // 3] ^= 0x10
    ivfdata.write_bytes(bytes(data))
    code, out, err = run(["search", "--store", path, "--split", "train", "--id", "train-00001",
                          "--factory", "IVF8,Flat"], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "is damaged" in err and "rebuild it: fs index" in err
    code, out, err = run(["verify", "--store", path], capsys)
    assert code == 2
    damaged = [li for li in out.splitlines() if li.startswith("damaged:")]
    assert len(damaged) == 1 and ivfdata.name in damaged[0] and "SHA-256" in damaged[0]
    code, _, err = run(["index", "--store", path, "--split", "train", "--factory", "IVF8,Flat", "-q"], capsys)
    assert code == 0, err  # rebuilt in this process: its lists are in the .faiss file, the old lists file goes
    assert not os.path.exists(ivfdata)
    code, out, err = run(["verify", "--store", path], capsys)
    assert code == 0 and "damaged" not in out, out + err

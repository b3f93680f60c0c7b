"""Building an index on a Dask cluster, its inverted lists merged into one file on disk.

The driver (this process) trains the coarse quantiser and codebooks once, on the same seeded
sample as the one-process build (:func:`featurestore.index.store_index.build_index`), and
chooses the same held-out tuning rows. Each Dask task then opens the store itself (read-only),
reads its own range of rows, adds them to a copy of the trained empty index (FAISS ids = store
positions) and writes that part to a temporary file beside the store; only the trained empty
index travels to the workers and only file names and the few tuning rows come back. FAISS's
``merge_from_multiple`` copies the parts' inverted lists into one ``OnDiskInvertedLists`` file
(``<...>.ivfdata``), whose index is tuned to the recall target against exact search, then merged
again with the tuning rows as one more part. Searches memory-map the lists
(:func:`featurestore.index.store_index.read_index_file`).

FAISS merges lists on disk for IVF indexes whose lists are plain arrays: ``IVF<n>[_HNSW<m>]``
with ``Flat``, ``PQ<m>`` (8-bit) or ``SQ`` codes; fast-scan codes (``x4fs``, stored in blocks),
re-ranking stages and HNSW graphs are refused in one line.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.errors import FeatureStoreError
from featurestore.index.files import (
    atomic_write,
    file_digest,
    index_paths,
    remove_leftovers,
    save_pair,
    store_mode,
    write_error,
)
from featurestore.index.plan import choose_factory, estimate_memory
from featurestore.index.store_index import (
    DEFAULT_RECALL,
    TUNE_QUERIES,
    StoreIndex,
    _build_limits,
    _check_deadline,
    _expected_meta,
    _faiss_reason,
    _make_index,
    _opened,
    _train_and_hold_out,
    _tune,
    quiet_stdout,
    read_index_file,
)
from featurestore.store.disk_space import check_room

DEFAULT_TASK_ROWS = 262_144  # rows per Dask task: a part file of at most this many rows


def on_disk_factory_problem(factory: str, dim: int) -> str | None:
    """Why FAISS cannot keep ``factory``'s inverted lists on disk (None when it can)."""
    import faiss

    index = _make_index(factory, dim)  # kept referenced: the downcast view does not own it
    ivf = faiss.downcast_index(index)
    if not isinstance(ivf, faiss.IndexIVF):
        return "it is not an IVF index alone (no inverted lists, or a re-ranking stage or transform around them)"
    lists: Any = ivf.invlists
    if not isinstance(faiss.downcast_InvertedLists(lists), faiss.ArrayInvertedLists):
        return "its lists are stored in SIMD blocks (fast-scan x4fs codes)"
    return None


def build_index_distributed(store: Any, encoder: str, split: str, factory: str = "auto", *, client: Any,
                            task_rows: int = DEFAULT_TASK_ROWS, chunk_rows: int = 65536,
                            train_size: int | None = None, seed: int = 0, quiet: bool = False,
                            max_memory: int | str | None = None, recall: float = DEFAULT_RECALL,
                            max_build: float | str | None = None, tune_queries: int = TUNE_QUERIES) -> StoreIndex:
    """Build, tune and save an on-disk IVF index over a split's valid rows on a Dask ``client``.

    Takes :func:`featurestore.index.store_index.build_index`'s options; ``task_rows`` store rows
    go to each task. ``factory="auto"`` chooses among the factories FAISS keeps on disk
    (:func:`featurestore.index.plan.choose_factory` with ``on_disk=True``). With the same factory,
    seed and training sample the merged index holds the same codes under the same ids as the
    one-process build, so it returns the same neighbours. Nothing is written unless the whole
    build succeeds; part files are removed in every case.
    """
    import faiss

    if int(task_rows) < 1 or int(task_rows) % int(chunk_rows):
        raise FeatureStoreError(f"task_rows must be a positive multiple of chunk_rows ({chunk_rows}), not {task_rows}")
    budget, limit, started, deadline = _build_limits(recall, max_memory, max_build)
    timings: dict[str, float] = {}
    with _opened(store) as fs:
        remove_leftovers(fs.path)
        ids = fs.ids(split)
        n = len(ids)
        if n == 0:
            raise FeatureStoreError(f"split {split!r} has no valid rows with {encoder!r} features to index")
        done = fs.done(encoder, split)
        if not done.all():
            raise FeatureStoreError(f"encoder {encoder!r} has features for {int(done.sum())} of {len(done)} rows of "
                                    f"split {split!r}; run fs extract again to finish")
        dim = int(fs.encoder_info(encoder)["embed_dim"])
        name = factory
        if factory == "auto":
            factory = choose_factory(n, dim, budget, on_disk=True)
        problem = on_disk_factory_problem(factory, dim)
        if problem is not None:
            raise FeatureStoreError(
                f"a cluster build keeps the inverted lists on disk, which FAISS cannot do for {factory!r}: {problem}; "
                "use IVF<n>,Flat, IVF<n>,PQ<m> or IVF<n>,SQ8 (or --factory auto), or build without a cluster")
        trained = _make_index(factory, dim)
        trained_rows, query_pos, enough_left = _train_and_hold_out(
            fs, encoder, split, n, trained, trained, factory, True, train_size, seed, tune_queries, chunk_rows,
            deadline, limit, timings, quiet)
        expected = _expected_meta(fs, encoder, split, name, ids)
        valid = fs.valid(split)
        faiss_path, json_path = index_paths(fs.path, encoder, split, name)
        ivfdata_path = faiss_path.with_suffix(".ivfdata")
        mode = store_mode(fs.path)
        rows = len(valid)
        first = np.concatenate([[0], np.cumsum(valid)])  # valid position of each row range's first row
        ranges = [(start, min(start + int(task_rows), rows)) for start in range(0, rows, int(task_rows))]
        prefix = fs.path.parent / f".{faiss_path.name}.{os.getpid()}"
        parts: list[Path] = []
        try:
            t0 = time.monotonic()
            empty = client.scatter(np.frombuffer(faiss.serialize_index(trained), dtype=np.uint8), broadcast=True)
            futures = [client.submit(add_rows, str(fs.path), encoder, split, start, stop, int(first[start]),
                                     query_pos[(query_pos >= first[start]) & (query_pos < first[stop])], empty,
                                     f"{prefix}.part{i}.tmp", chunk_rows, pure=False)
                       for i, (start, stop) in enumerate(ranges)]
            parts = [Path(f"{prefix}.part{i}.tmp") for i in range(len(ranges))]
            results = client.gather(futures)
            timings["add"] = time.monotonic() - t0
            added = sum(r["added"] for r in results)
            queries = np.concatenate([r["queries"] for r in results]).astype(np.float32)
            if added + len(queries) != n or len(queries) != len(query_pos):
                raise FeatureStoreError(f"split {split!r} changed while it was being indexed; build the index again")
            _check_deadline(deadline, limit, f"adding rows on the cluster ({len(ranges)} tasks)")
            t0 = time.monotonic()
            view = _merged(trained, parts, Path(f"{prefix}.tuning.tmp"))
            timings["merge"] = time.monotonic() - t0
            meta = {**expected, "factory": factory, "ntotal": n, "dim": dim, "metric": "inner_product",
                    "normalized": True, "faiss_version": faiss.__version__, "train_rows": trained_rows, "seed": seed,
                    "request": {"max_memory": budget, "recall": float(recall), "max_build_s": limit,
                                "train_size": train_size, "tune_queries": tune_queries},
                    "tuning_queries_in_training_sample": not enough_left,
                    "estimated_bytes": estimate_memory(factory, n, dim),
                    "cluster": {"tasks": len(ranges), "task_rows": int(task_rows),
                                "workers": len(client.scheduler_info().get("workers", {}))},
                    "ivfdata": ivfdata_path.name}  # tuned on the CPU: its lists stay on disk
            t0 = time.monotonic()
            _tune(StoreIndex(view, meta), fs, encoder, split, n, queries, query_pos, float(recall), chunk_rows,
                  deadline, limit, quiet)
            timings["tune"] = time.monotonic() - t0
            del view
            Path(f"{prefix}.tuning.tmp").unlink(missing_ok=True)
            query_part = Path(f"{prefix}.queries.tmp")
            parts.append(query_part)
            with_queries = faiss.clone_index(trained)
            with_queries.add_with_ids(queries, query_pos.astype(np.int64))
            faiss.write_index(with_queries, str(query_part))
            del with_queries
            _save_on_disk(trained, parts, meta, faiss_path, json_path, ivfdata_path, mode, timings, started)
        finally:
            for part in parts + [Path(f"{prefix}.tuning.tmp")]:
                part.unlink(missing_ok=True)
        return StoreIndex(read_index_file(faiss_path, meta), meta, faiss_path)


def add_rows(store_path: str, encoder: str, split: str, start: int, stop: int, first_position: int,
             query_pos: np.ndarray, empty: np.ndarray, part_path: str, chunk_rows: int) -> dict[str, Any]:
    """One Dask task: add the valid rows ``[start, stop)`` of a split (but the tuning rows) to a
    copy of the trained empty index and write it to ``part_path``. Returns the number of rows
    added and the tuning rows' normalized vectors (held out until the index is tuned).

    Rows are added ``chunk_rows`` store rows at a time, from a multiple of ``chunk_rows``: the
    batches the one-process build adds. BLAS rounds a row's distances to the centroids
    differently in a differently composed batch, and a row near the boundary of two lists
    could then land in the other list."""
    import faiss

    from featurestore.store.feature_store import FeatureStore

    index = faiss.deserialize_index(np.asarray(empty))
    added = 0
    queries = []
    position = first_position
    with FeatureStore(store_path) as fs:
        for begin in range(start, stop, chunk_rows):
            vectors, _ = fs.read_rows(encoder, split, begin, min(begin + chunk_rows, stop))
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            faiss.normalize_L2(vectors)
            positions = position + np.arange(len(vectors), dtype=np.int64)
            position += len(vectors)
            is_query = np.isin(positions, query_pos, assume_unique=True)
            queries.append(vectors[is_query])
            index.add_with_ids(vectors[~is_query], positions[~is_query])
            added += int((~is_query).sum())
    faiss.write_index(index, part_path)
    return {"added": added, "queries": np.concatenate(queries) if queries else np.zeros((0, index.d), np.float32)}


def _merged(trained: Any, parts: list[Path], ivfdata: Path) -> Any:
    """A copy of the trained empty index whose inverted lists are the parts' lists merged into
    the on-disk file ``ivfdata``."""
    import faiss

    index = faiss.clone_index(trained)
    ivf = faiss.extract_index_ivf(index)
    sources = []
    for part in parts:
        with quiet_stdout():
            loaded = faiss.read_index(str(part), faiss.IO_FLAG_MMAP)
        sources.append(loaded)  # keeps each part's lists alive until merged
    vector = faiss.InvertedListsPtrVector()  # type: ignore[attr-defined]  # SWIG vector, not in faiss's .pyi
    for loaded in sources:
        vector.push_back(faiss.extract_index_ivf(loaded).invlists)
    lists: Any = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(ivfdata))
    try:
        with quiet_stdout():
            ntotal = lists.merge_from_multiple(vector.data(), vector.size(), False)
    except RuntimeError as exc:
        raise FeatureStoreError(f"FAISS could not merge the index parts: {_faiss_reason(exc)}") from None
    index.ntotal = ivf.ntotal = ntotal
    ivf.replace_invlists(lists, True)
    lists.this.disown()
    return index


def _save_on_disk(trained: Any, parts: list[Path], meta: dict[str, Any], faiss_path: Path, json_path: Path,
                  ivfdata_path: Path, mode: int | None, timings: dict[str, float], started: float) -> None:
    """Merge ``parts`` into the final ``.ivfdata`` (atomically), then write the ``.faiss`` file
    naming it and the sidecar with both files' SHA-256 and the build's timings."""
    import faiss

    json_path.unlink(missing_ok=True)  # no sidecar while the pair is replaced: a crash means rebuild
    merged: list[Any] = []
    t0 = time.monotonic()

    def write_lists(tmp: Path) -> None:
        tmp.unlink()
        merged.append(_merged(trained, parts, tmp))
        meta["ivfdata_bytes"] = tmp.stat().st_size
        meta["ivfdata_sha256"] = file_digest(tmp)

    def write_index(tmp: Path) -> None:
        lists: Any = faiss.downcast_InvertedLists(faiss.extract_index_ivf(merged[0]).invlists)  # type: ignore[arg-type]
        lists.filename = str(ivfdata_path)  # the name the .faiss file records; read back beside it
        with open(tmp, "wb") as out:  # through Python's file object: a full disk is an OSError here
            faiss.write_index(merged[0], faiss.PyCallbackIOWriter(out.write))  # type: ignore[attr-defined]
        meta["bytes"] = tmp.stat().st_size
        meta["sha256"] = file_digest(tmp)
        timings["merge"] += time.monotonic() - t0
        timings["total"] = time.monotonic() - started
        meta["build_seconds"] = {key: round(value, 3) for key, value in timings.items()}

    meta["ivfdata"] = ivfdata_path.name
    try:
        # FAISS grows the merged lists through a memory map: a disk that fills there is a bus
        # error, not an exception, so the room for every part's lists is checked first
        check_room(ivfdata_path.parent, sum(part.stat().st_size for part in parts))
        atomic_write(ivfdata_path, write_lists, mode)
        save_pair(write_index, meta, faiss_path, json_path, mode)
    except OSError as exc:
        raise write_error(faiss_path, exc) from None
    except RuntimeError as exc:
        raise write_error(faiss_path, exc, _faiss_reason(exc)) from None

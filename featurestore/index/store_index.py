"""FAISS indexes over a store's image features, saved beside the store and tied to its rows.

An index covers the *valid* rows of one split for one encoder, in row order, so a search
position ``p`` names ``store.ids(split)[p]``. Vectors are L2-normalized and compared by inner
product (cosine similarity). A JSON sidecar records what the index was built from (encoder,
weights, a fingerprint of the split's valid ids), so a store that grew or changed is detected
and the index rebuilt instead of silently answering with stale positions.

An approximate index is tuned after its build: its search parameter (``nprobe``, ``efSearch``,
``k_factor``) is set to the smallest value whose recall@10 against exact search meets the recall
target, with stored rows as queries that were held out of the index (and, when the split has
rows enough, of the training sample) while it was tuned, then added. Approximate indexes map
FAISS ids to store positions (``IndexIDMap``) so those rows can be added last. The parameters,
the recall and every setting tried (with its queries/s) are kept in the sidecar and applied
whenever the index is loaded. ``factory="auto"`` chooses the index from the row count and a
memory budget (:mod:`featurestore.index.plan`).
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.errors import FeatureStoreError, NotFoundError, ProvenanceError
from featurestore.index.files import (
    SIDECAR_FORMAT,
    damage,
    damaged_error,
    factory_slug,
    file_digest,
    index_paths,
    read_sidecar,
    remove_leftovers,
    save_pair,
    sidecars,
    store_mode,
    write_error,
)
from featurestore.index.plan import choose_factory, estimate_memory, parse_duration, parse_memory, train_rows
from featurestore.store.feature_store import FeatureStore

__all__ = [
    "DEFAULT_RECALL",
    "StoreIndex",
    "build_index",
    "choose_factory",
    "exact_topk",
    "factory_slug",
    "ids_fingerprint",
    "index_names",
    "index_paths",
    "load_index",
    "recall_at_k",
]

GPU_MAX_K = 2048
DEFAULT_RECALL = 0.95
TUNE_QUERIES = 1000
TUNE_K = 10
TRAIN_MIN_ROWS_PER_LIST = 40

StoreLike = FeatureStore | str | os.PathLike


def ids_fingerprint(ids: Iterable[str]) -> str:
    """SHA-1 of the ids joined by newlines: identifies the exact row set an index covers."""
    return hashlib.sha1("\n".join(ids).encode("utf-8")).hexdigest()


class StoreIndex:
    """A FAISS index over one split's valid rows, with the sidecar metadata it was built from.

    ``index`` is the CPU index (what is saved); searches run on a copy on all GPUs when
    ``faiss.get_num_gpus() > 0`` and FAISS can move the index there (``notes`` says when it
    cannot). The tuned search parameters of ``meta["search_params"]`` are applied.
    """

    def __init__(self, index: Any, meta: dict[str, Any], path: Path | None = None) -> None:
        from featurestore.index.tuning import set_params

        self.index = index
        self.meta = meta
        self.path = path
        self.notes: list[str] = []
        params = dict(meta.get("search_params") or {})
        if params:
            set_params(index, params)
        gpu, note = _to_gpu(index, meta.get("factory", "?"), on_disk=bool(meta.get("ivfdata")))
        if note:
            self.notes.append(note)
        self._search_index = gpu or index
        self.params = params
        if gpu is not None and params:
            self.set_params(params)

    def __repr__(self) -> str:
        return (f"StoreIndex({self.meta['factory']!r}, encoder={self.meta['encoder']!r}, "
                f"split={self.meta['split']!r}, ntotal={self.ntotal})")

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors (the split's valid rows when built)."""
        return int(self.index.ntotal)

    @property
    def on_gpu(self) -> bool:
        return self._search_index is not self.index

    def set_params(self, params: dict[str, int]) -> None:
        """Set search parameters (``nprobe``, ``efSearch``, ``k_factor``) on the CPU and GPU copies."""
        from featurestore.index.tuning import quantizer_ef_search, set_params

        try:
            set_params(self.index, params)
        except KeyError as exc:
            raise FeatureStoreError(f"{self.meta['factory']!r} has no search parameter {exc.args[0]}") from None
        if self.on_gpu:
            import faiss

            space = faiss.GpuParameterSpace()
            target = faiss.downcast_index(self._search_index)
            if isinstance(target, (faiss.IndexIDMap, faiss.IndexIDMap2)):
                target = faiss.downcast_index(target.index)
            try:
                for name, value in params.items():
                    space.set_index_parameter(target, name, float(value))
                    if name == "nprobe" and "_HNSW" in self.meta.get("factory", ""):
                        space.set_index_parameter(target, "quantizer_efSearch", quantizer_ef_search(value))
            except RuntimeError as exc:  # the CPU index has the parameters: search there, and say so
                self._search_index = self.index
                self.notes.append(f"FAISS cannot set {_params_text(params)} on the GPU copy of "
                                  f"{self.meta.get('factory')!r} ({_faiss_reason(exc)}); it runs on the CPU")
        self.params = {**self.params, **params}

    def search(self, queries: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` cosine neighbours of each query: ``(scores (Q, k') float32, positions (Q, k') int64)``.

        Queries are L2-normalized first. ``k`` is clamped to ``ntotal`` (``k' = min(k, ntotal)``).
        An approximate index (IVF with a small ``nprobe``, HNSW) may still find fewer than ``k'``
        neighbours: those slots are padded with position -1 and score -inf, after the real ones.
        ``nprobe`` (IVF lists visited) applies to IVF indexes only, for this search; None keeps the
        tuned value.
        """
        import faiss

        q = np.array(queries, dtype=np.float32, copy=True, order="C")
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.index.d:
            raise ProvenanceError(
                f"queries have shape {np.shape(queries)} but the index holds vectors of dim {self.index.d}"
            )
        if int(k) < 1:
            raise FeatureStoreError(f"k must be at least 1, not {k}")
        k = min(int(k), self.ntotal)
        if k == 0 or len(q) == 0:
            return np.zeros((len(q), k), np.float32), np.zeros((len(q), k), np.int64)
        restore = None
        if nprobe is not None:
            if int(nprobe) < 1:
                raise FeatureStoreError(f"nprobe must be at least 1, not {nprobe}")
            if faiss.try_extract_index_ivf(self.index) is None:
                raise FeatureStoreError(
                    f"nprobe applies to IVF indexes only; {self.meta['factory']!r} has no IVF lists")
            restore = {"nprobe": self.params.get("nprobe", int(faiss.extract_index_ivf(self.index).nprobe))}
            self.set_params({"nprobe": int(nprobe)})
        try:
            faiss.normalize_L2(q)
            target = self._search_index if k <= GPU_MAX_K else self.index
            scores, positions = target.search(q, k)
        finally:
            if restore is not None:
                self.set_params(restore)
        scores = np.asarray(scores, dtype=np.float32)
        positions = np.asarray(positions, dtype=np.int64)
        scores[positions < 0] = -np.inf
        return scores, positions

    def hits(self, store: StoreLike, split: str, queries: np.ndarray, k: int,
             nprobe: int | None = None) -> list[list[dict[str, Any]]]:
        """Search and name the neighbours: per query, a list of ``{id, path, score, label}``.

        Padding slots (position -1) are left out, so a list may be shorter than ``k``. Raises
        ProvenanceError when the store's rows no longer match the ones indexed.
        """
        if split != self.meta["split"]:
            raise ProvenanceError(f"this index covers split {self.meta['split']!r}, not {split!r}")
        with _opened(store) as fs:
            ids = fs.ids(split)
            if ids_fingerprint(ids) != self.meta["ids_sha1"]:
                raise ProvenanceError(
                    f"split {split!r} of {fs.path} changed since this index was built; load it again to rebuild"
                )
            paths, labels = fs.paths(split), fs.labels(split)
        scores, positions = self.search(queries, k, nprobe=nprobe)
        return [
            [{"id": str(ids[p]), "path": str(paths[p]), "score": float(s), "label": int(labels[p])}
             for s, p in zip(row_scores, row_positions) if p >= 0]
            for row_scores, row_positions in zip(scores, positions)
        ]


def exact_topk(fs: FeatureStore, encoder: str, split: str, queries: np.ndarray, k: int,
               chunk_rows: int = 65536, n: int | None = None, exclude: np.ndarray | None = None,
               quiet: bool = True) -> np.ndarray:
    """Positions of the exact cosine top-k of normalized ``queries`` among the first ``n`` valid rows
    (all by default) but the positions in ``exclude``, streaming the store chunk by chunk. Ties go
    to the lower position."""
    import faiss
    from tqdm.auto import tqdm

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    total = len(fs.ids(split)) if n is None else n
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_pos = np.zeros((len(queries), 0), dtype=np.int64)
    with tqdm(total=total, desc=f"exact search {split}", unit="row", disable=quiet) as bar:
        for positions, block in _first_rows(fs.iter_features(encoder, split, chunk_rows=chunk_rows), total):
            bar.update(len(block))
            if exclude is not None and len(exclude):
                keep = ~np.isin(positions, exclude)
                positions, block = positions[keep], block[keep]
            if not len(block):
                continue
            block = np.ascontiguousarray(block, dtype=np.float32)
            faiss.normalize_L2(block)
            kk = min(k, len(block))
            scores, local = faiss.knn(queries, block, kk, metric=faiss.METRIC_INNER_PRODUCT)
            scores = np.concatenate([best_scores, scores], axis=1)
            pos = np.concatenate([best_pos, positions[local]], axis=1)
            top = _top_by_score_then_position(scores, pos, k)
            best_scores, best_pos = np.take_along_axis(scores, top, 1), np.take_along_axis(pos, top, 1)
    return best_pos


def _top_by_score_then_position(scores: np.ndarray, positions: np.ndarray, k: int) -> np.ndarray:
    order = np.empty((len(scores), min(k, scores.shape[1])), dtype=np.int64)
    for i, (s, p) in enumerate(zip(scores, positions)):
        order[i] = np.lexsort((p, -s))[: order.shape[1]]
    return order



def _build_limits(recall: float, max_memory: int | str | None,
                  max_build: float | str | None) -> tuple[int | None, float | None, float, float | None]:
    """A build's checked recall target and limits: (memory budget in bytes, time limit in seconds,
    start time, deadline), None where not given."""
    if not 0.0 < float(recall) <= 1.0:
        raise FeatureStoreError(f"the recall target must be in (0, 1], not {recall}")
    budget = None if max_memory is None else parse_memory(max_memory)
    limit = None if max_build is None else parse_duration(max_build)
    started = time.monotonic()
    return budget, limit, started, None if limit is None else started + limit


def build_index(store: StoreLike, encoder: str, split: str, factory: str = "Flat", *,
                chunk_rows: int = 65536, train_size: int | None = None, seed: int = 0,
                quiet: bool = False, max_memory: int | str | None = None, recall: float = DEFAULT_RECALL,
                max_build: float | str | None = None, tune_queries: int = TUNE_QUERIES) -> StoreIndex:
    """Build, tune, save (beside the store) and return a cosine index over a split's valid rows.

    ``factory="auto"`` chooses one from the row count and ``max_memory`` (bytes or ``"2G"``;
    :func:`featurestore.index.plan.choose_factory`) and is saved under the name ``auto``.
    Factories that need training (IVF, PQ) are trained on a seeded random sample of the stored
    rows (``max(40 x lists, 10000)`` by default, capped at the number of rows); the rows are then
    added chunk by chunk. An approximate index is tuned to the smallest search parameter reaching
    ``recall``: recall@10 against exact search, with ``tune_queries`` stored rows (a fifth of the
    rows at most, outside the training sample when enough remain) as queries, held out of the
    index while it is tuned and added afterwards. When no setting reaches the target, the best one
    is kept and ``meta["note"]`` says so in one line.
    ``max_build`` (seconds or ``"10m"``) bounds the whole build: past it the build stops with
    FeatureStoreError and nothing is written (or, during tuning, the best setting so far is kept).
    A build that is killed leaves no index file behind; its temporary files are removed by the
    next build or load.
    """
    import faiss
    from tqdm.auto import tqdm

    budget, limit, started, deadline = _build_limits(recall, max_memory, max_build)
    timings: dict[str, float] = {}
    with _opened(store) as fs:
        remove_leftovers(fs.path)
        ids = fs.ids(split)
        n = len(ids)
        dim = int(fs.encoder_info(encoder)["embed_dim"])
        name = factory
        if factory == "auto":
            factory = choose_factory(n, dim, budget, gpu=faiss.get_num_gpus() > 0)
        expected = _expected_meta(fs, encoder, split, name, ids)
        chunks = fs.iter_features(encoder, split, chunk_rows=chunk_rows)
        first = next(chunks, None)
        if first is None or n == 0:
            raise FeatureStoreError(f"split {split!r} has no valid rows with {encoder!r} features to index")
        dim = int(first[1].shape[1])
        approximate = factory.strip() != "Flat"
        cpu_index = _make_index(factory, dim)
        if approximate:  # ids = store positions, so the tuning queries can be added last
            cpu_index = faiss.IndexIDMap(cpu_index)
        gpu_index, gpu_note = _to_gpu(cpu_index, factory)
        index = gpu_index or cpu_index
        trained_rows, query_pos, enough_left = _train_and_hold_out(
            fs, encoder, split, n, index, cpu_index, factory, approximate, train_size, seed, tune_queries, chunk_rows,
            deadline, limit, timings, quiet)
        query_parts = []
        added = 0
        t0 = time.monotonic()
        with tqdm(total=n, desc=f"index {split}", unit="row", disable=quiet) as bar:
            for positions, block in _first_rows(itertools.chain([first], chunks), n):
                vectors = np.ascontiguousarray(block, dtype=np.float32)
                faiss.normalize_L2(vectors)
                if approximate:  # the tuning queries stay out of the index until it is tuned
                    is_query = np.isin(positions, query_pos, assume_unique=True)
                    query_parts.append(vectors[is_query])
                    index.add_with_ids(vectors[~is_query], positions[~is_query].astype(np.int64))
                else:
                    index.add(vectors)
                added += len(vectors)
                bar.update(len(vectors))
                _check_deadline(deadline, limit, f"adding rows ({added} of {n} added)")
        if added != n:
            raise FeatureStoreError(f"split {split!r} changed while it was being indexed; build the index again")
        timings["add"] = time.monotonic() - t0
        if gpu_index is not None:
            cpu_index = faiss.index_gpu_to_cpu(gpu_index)
        meta = {**expected, "factory": factory, "ntotal": n, "dim": dim,
                "metric": "inner_product", "normalized": True, "faiss_version": faiss.__version__,
                "train_rows": trained_rows, "seed": seed,
                "request": {"max_memory": budget, "recall": float(recall), "max_build_s": limit,
                            "train_size": train_size, "tune_queries": tune_queries},
                "tuning_queries_in_training_sample": not enough_left,
                "estimated_bytes": estimate_memory(factory, n, dim)}
        if approximate:
            queries = np.concatenate(query_parts)
            t0 = time.monotonic()
            _tune(StoreIndex(cpu_index, meta), fs, encoder, split, n, queries, query_pos, float(recall), chunk_rows,
                  deadline, limit, quiet)
            cpu_index.add_with_ids(queries, query_pos.astype(np.int64))
            timings["tune"] = time.monotonic() - t0
        else:
            meta.update({"search_params": {}, "recall_at_10": 1.0, "target_met": True, "tuning": []})
        built = StoreIndex(cpu_index, meta)
        if gpu_note and gpu_note not in built.notes:
            built.notes.append(gpu_note)
        timings["total"] = time.monotonic() - started
        meta["build_seconds"] = {key: round(value, 3) for key, value in timings.items()}
        faiss_path, json_path = index_paths(fs.path, encoder, split, name)
        mode = store_mode(fs.path)
        built.path = faiss_path
        _save(cpu_index, meta, faiss_path, json_path, mode)
    return built


def _train_and_hold_out(fs: FeatureStore, encoder: str, split: str, n: int, index: Any, cpu_index: Any, factory: str,
                        approximate: bool, train_size: int | None, seed: int, tune_queries: int, chunk_rows: int,
                        deadline: float | None, limit: float | None, timings: dict[str, float],
                        quiet: bool) -> tuple[int, np.ndarray, bool]:
    """Train ``index`` (when it needs training) on a seeded sample of the rows and choose the
    tuning queries: ``(training rows, sorted query positions, queries outside the sample)``.
    The one-process and the cluster build both call this, so the same seed gives both the same
    sample, the same trained index and the same queries."""
    order = np.random.default_rng(seed).permutation(n)
    trained_rows = 0
    n_queries = min(tune_queries, n // 5) if approximate else 0
    if not cpu_index.is_trained:
        trained_rows = _train_count(cpu_index, factory, n, train_size)
        if train_size is None:  # leave the tuning queries out of the sample while enough rows remain
            ivf = _ivf(cpu_index)
            floor = min(trained_rows, max(TRAIN_MIN_ROWS_PER_LIST * (int(ivf.nlist) if ivf else 0), 1000))
            trained_rows = max(min(trained_rows, n - n_queries), floor)
        t0 = time.monotonic()
        sample = _gather(fs, encoder, split, n, np.sort(order[:trained_rows]), chunk_rows, f"sample {split}", quiet)
        timings["sample"] = time.monotonic() - t0
        _check_deadline(deadline, limit, "sampling the training rows")
        t0 = time.monotonic()
        try:
            index.train(sample)
        except RuntimeError as exc:
            raise FeatureStoreError(f"FAISS could not train {factory!r}: {_faiss_reason(exc)}") from None
        del sample
        timings["train"] = time.monotonic() - t0
        _check_deadline(deadline, limit, "training")
    enough_left = n - trained_rows >= n_queries
    held_out = order[trained_rows:] if enough_left else order
    return trained_rows, np.sort(held_out[:n_queries]), enough_left


def _tune(view: StoreIndex, fs: FeatureStore, encoder: str, split: str, n: int, queries: np.ndarray,
          query_pos: np.ndarray, target: float, chunk_rows: int, deadline: float | None, limit: float | None,
          quiet: bool) -> None:
    """Tune the search parameters of ``view`` (an index of every row but the query rows) on the
    query rows against exact search over the same rows; record the outcome in its meta."""
    from tqdm.auto import tqdm

    from featurestore.index.tuning import knobs, tune

    meta = view.meta
    k = min(TUNE_K, n - len(query_pos))
    meta.update({"tune_k": k, "tuning_queries": len(queries), "recall_target": target})
    if k < 1 or not len(queries):
        meta.update({"search_params": {}, "target_met": False, "tuning": [],
                     "note": f"only {n} rows: too few to hold queries out and tune; searched with FAISS defaults"})
        return
    truth = exact_topk(fs, encoder, split, queries, k, chunk_rows, n=n, exclude=query_pos, quiet=quiet)
    with tqdm(desc=f"tune {meta['factory']}", unit="setting", disable=quiet) as bar:
        def show(result: dict[str, Any]) -> None:
            bar.update(1)
            bar.set_postfix(recall=f"{result['recall']:.3f}")

        params, tried, met = tune(knobs(view.index), view.set_params, lambda q, kk: view.search(q, kk)[1], queries,
                                  truth, target, deadline, progress=show)
    final = next(r for r in reversed(tried) if r["params"] == params)
    meta.update({"search_params": params, "recall_at_10" if k == 10 else f"recall_at_{k}": final["recall"],
                 "recall_lower_95": final["recall_lower"], "qps": final["qps"],
                 "target_met": bool(met and final["recall_lower"] >= target),
                 "tuning": [{"params": r["params"], "recall": round(r["recall"], 4),
                             "recall_lower": round(r["recall_lower"], 4), "qps": round(r["qps"], 1)}
                            for r in tried]})
    if not meta["target_met"]:
        late = deadline is not None and time.monotonic() > deadline
        why = (f"--max-build {limit:.0f}s ran out" if late
               else f"{meta['factory']} cannot reach it within its parameters")
        meta["note"] = (f"recall@{k} target {target:g} not met: best {final['recall']:.3f} (95% lower bound "
                        f"{final['recall_lower']:.3f}) with "
                        f"{_params_text(params)} ({why}); kept the best setting")


def _params_text(params: dict[str, int]) -> str:
    return ", ".join(f"{key}={value}" for key, value in params.items()) or "no parameters"


def _check_deadline(deadline: float | None, limit: float | None, stage: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise FeatureStoreError(
            f"the build ran past --max-build {limit:.0f}s while {stage}; nothing was written "
            "(raise --max-build, or lower --max-memory / --train-size for a faster index)"
        )


def index_names(store: StoreLike, encoder: str, split: str) -> list[str]:
    """Names (``Flat``, ``auto``, factory strings) of the indexes saved for one encoder and split."""
    with _opened(store) as fs:
        path = fs.path
    return sorted({meta["name"] for _, meta in sidecars(path)
                   if meta.get("encoder") == encoder and meta.get("split") == split and "name" in meta})


def resolve_name(store: StoreLike, encoder: str, split: str) -> str:
    """The index ``fs search`` uses when none is named: ``auto`` if built, else the only one,
    else ``Flat`` (built on first use); several without ``auto`` is a user error."""
    names = index_names(store, encoder, split)
    if "auto" in names:
        return "auto"
    if len(names) == 1:
        return names[0]
    if not names:
        return "Flat"
    raise FeatureStoreError(f"several indexes of {encoder!r} / {split!r}: {', '.join(names)}; pick one with --factory")


def load_index(store: StoreLike, encoder: str, split: str, factory: str | None = "Flat", *,
               rebuild_stale: bool = True, quiet: bool = False, **build_options: Any) -> StoreIndex:
    """Load a saved index if it still matches the store's rows; otherwise (re)build it.

    ``factory`` names the index (``Flat``, a factory string, or ``auto``); None picks the one
    built for this encoder and split (:func:`resolve_name`). Stale means the split's valid ids,
    the encoder's weights or the factory differ from the sidecar (a moved store keeps its
    index). A rebuild reuses the options the sidecar recorded (memory budget, recall target, ...),
    overridden by ``build_options`` (passed to :func:`build_index`). With ``rebuild_stale=False``
    a stale index raises FeatureStoreError and a missing one NotFoundError instead.
    """

    with _opened(store) as fs:
        remove_leftovers(fs.path)
        name = resolve_name(fs, encoder, split) if factory is None else factory
        faiss_path, json_path = index_paths(fs.path, encoder, split, name)
        meta = read_sidecar(json_path) if json_path.exists() else {}
        options = {**_recorded_options(meta), **build_options}
        if not (faiss_path.exists() and json_path.exists()):
            if not rebuild_stale:
                raise NotFoundError(f"no {name!r} index of {encoder!r} / {split!r} beside {fs.path}; build it first")
            return build_index(fs, encoder, split, name, quiet=quiet, **options)
        expected = _expected_meta(fs, encoder, split, name, fs.ids(split))
        reason = _stale_reason(meta, expected)
        index = None
        if reason is None:
            why = damage(faiss_path, meta)
            if why is not None:
                raise damaged_error(fs.path, faiss_path, meta, why)
            try:
                index = read_index_file(faiss_path, meta)
            except RuntimeError:
                reason = "its .faiss file is unreadable"
            else:
                if int(index.ntotal) != meta["ntotal"]:
                    reason = "its .faiss file does not match its sidecar"
        if reason is None:
            return StoreIndex(index, meta, faiss_path)
        if not rebuild_stale:
            raise FeatureStoreError(
                f"index {faiss_path.name} is stale ({reason}); "
                "rebuild it with build_index or load_index(rebuild_stale=True)"
            )
        return build_index(fs, encoder, split, name, quiet=quiet, **options)


def read_index_file(faiss_path: Path, meta: dict[str, Any]) -> Any:
    """Read a saved index; the inverted lists of an on-disk index (its sidecar names an
    ``.ivfdata`` file) stay on disk, memory-mapped from the file beside ``faiss_path``, and are
    paged in as searches visit them."""
    import faiss

    flags = faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY if meta.get("ivfdata") else 0
    if not flags:
        return faiss.read_index(str(faiss_path))
    with quiet_stdout():  # FAISS prints the on-disk file name it resolved on stdout (it would break --json)
        return faiss.read_index(str(faiss_path), flags)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send what C++ code prints on file descriptor 1 to /dev/null meanwhile (FAISS's on-disk
    lists print a line per file they open or resize)."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _recorded_options(meta: dict[str, Any]) -> dict[str, Any]:
    recorded = meta.get("request")
    request: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    options: dict[str, Any] = {}
    for key, option in (("max_memory", "max_memory"), ("recall", "recall"), ("max_build_s", "max_build"),
                        ("train_size", "train_size"), ("tune_queries", "tune_queries")):
        if request.get(key) is not None:
            options[option] = request[key]
    if isinstance(meta.get("seed"), int):
        options["seed"] = meta["seed"]
    return options


def recall_at_k(approx_positions: np.ndarray, exact_positions: np.ndarray, k: int) -> float:
    """Mean fraction of each query's exact top-``k`` found in the approximate top-``k``.

    Reports IVF/HNSW quality against exact (Flat) search. -1 padding is ignored; ``k`` is
    clamped to the exact result's width.
    """
    approx = np.asarray(approx_positions)
    exact = np.asarray(exact_positions)
    if approx.ndim != 2 or exact.ndim != 2 or len(approx) != len(exact):
        raise ValueError(f"positions must be (Q, k) arrays with the same Q, not {approx.shape} and {exact.shape}")
    k = min(int(k), exact.shape[1])
    if k < 1 or len(exact) == 0:
        raise ValueError("recall@k needs at least one query and k >= 1")
    found = 0
    total = 0
    for a, e in zip(approx[:, :k], exact[:, :k]):
        truth = set(e[e >= 0].tolist())
        found += len(truth & set(a[a >= 0].tolist()))
        total += len(truth)
    return found / total if total else 1.0


@contextlib.contextmanager
def _opened(store: StoreLike) -> Iterator[FeatureStore]:
    """Yield ``store`` itself, or open a path read-only for the duration."""
    if isinstance(store, FeatureStore):
        yield store
        return
    with FeatureStore(store) as fs:
        yield fs


def _expected_meta(fs: FeatureStore, encoder: str, split: str, name: str, ids: np.ndarray) -> dict[str, Any]:
    info = fs.encoder_info(encoder)
    return {
        "format": SIDECAR_FORMAT,
        "store": str(fs.path.resolve()),
        "encoder": encoder,
        "split": split,
        "name": name,
        "model": info.get("model"),
        "weights": info.get("weights"),
        "n_ids": len(ids),
        "ids_sha1": ids_fingerprint(ids),
    }


def _stale_reason(meta: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """Why a sidecar no longer matches the store, or None when it does."""
    if not meta or meta.get("format") != SIDECAR_FORMAT or "ntotal" not in meta:
        return "its sidecar is unreadable or from another featurestore version"
    for field, what in (("encoder", "another encoder"), ("split", "another split"), ("name", "another factory"),
                        ("model", "another model"), ("weights", "other weights")):
        if meta.get(field) != expected[field]:
            return f"built with {what}: {meta.get(field)!r}, the store has {expected[field]!r}"
    if meta.get("n_ids") != expected["n_ids"]:
        return f"it holds {meta.get('n_ids')} rows, the split now has {expected['n_ids']} valid rows"
    if meta.get("ids_sha1") != expected["ids_sha1"]:
        return "the split's valid ids changed"
    if not meta.get("sha256"):
        return "its sidecar records no checksum of the index file (built by an older featurestore)"
    return None


def _make_index(factory: str, dim: int) -> Any:
    """The FAISS index of ``factory`` (inner product), with polysemous training off.

    FAISS's 8-bit PQ indexes (``PQ<m>`` without the ``np`` suffix) train a polysemous code
    permutation by default: it only serves polysemous search (``polysemous_ht`` > 0, never set
    here), leaves every distance and result the same, and on a CPU costs far more than the rest of
    the build (bench/RESULTS.md)."""
    import faiss

    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise FeatureStoreError(
            f"FAISS cannot build a cosine (inner-product) index from factory string {factory!r}: {_faiss_reason(exc)}"
        ) from None
    codes = _base_of(index)  # IndexPQ / IndexIVFPQ under any refine, transform or id-map wrapper
    if hasattr(codes, "do_polysemous_training"):
        codes.do_polysemous_training = False
    return index


def _base_of(index: Any) -> Any:
    """The innermost index under refine / pre-transform / id-map wrappers."""
    import faiss

    index = faiss.downcast_index(index)
    while True:
        inner = getattr(index, "base_index", None) or getattr(index, "index", None)
        if inner is None or inner is index:
            return index
        index = faiss.downcast_index(inner)


def _ivf(index: Any) -> Any:
    import faiss

    return faiss.try_extract_index_ivf(index)


def _train_count(index: Any, factory: str, n: int, train_size: int | None) -> int:
    """Rows to train on; refuses IVF factories with more lists than rows."""
    ivf = _ivf(index)
    nlist = int(ivf.nlist) if ivf is not None else 0
    if nlist > n:
        raise FeatureStoreError(
            f"{factory!r} has {nlist} IVF lists but split has only {n} valid rows; use at most {n} lists "
            f"(about {max(1, int(4 * np.sqrt(n)))} is typical)"
        )
    count = train_rows(nlist, n, train_size)
    if count < max(nlist, 1):
        raise FeatureStoreError(f"train_size={train_size} is smaller than the {nlist} IVF lists of {factory!r}")
    return count


def _gather(fs: FeatureStore, encoder: str, split: str, n: int, wanted: np.ndarray, chunk_rows: int,
            desc: str, quiet: bool) -> np.ndarray:
    """Normalized features of the sorted valid positions ``wanted``, streamed chunk by chunk."""
    import faiss
    from tqdm.auto import tqdm

    parts = []
    with tqdm(total=n, desc=desc, unit="row", disable=quiet) as bar:
        for positions, block in _first_rows(fs.iter_features(encoder, split, chunk_rows=chunk_rows), n):
            keep = np.isin(positions, wanted, assume_unique=True)
            parts.append(block[keep])
            bar.update(len(positions))
    sample = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
    faiss.normalize_L2(sample)
    return sample


def _first_rows(chunks: Iterable[tuple[np.ndarray, np.ndarray]], n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The chunks cut to the first ``n`` positions (rows a writer appended meanwhile are left out)."""
    for positions, block in chunks:
        keep = positions < n
        if keep.any():
            yield positions[keep], block[keep]
        if not keep.all():
            return


def _to_gpu(index: Any, factory: str, on_disk: bool = False) -> tuple[Any | None, str | None]:
    """``(copy of index on all GPUs, None)``; ``(None, None)`` without GPUs; ``(None, why)`` when
    GPUs exist but FAISS cannot move this index type there, or its lists stay on disk (it then
    runs on the CPU)."""
    import faiss

    if faiss.get_num_gpus() <= 0:
        return None, None
    if on_disk:
        return None, f"the inverted lists of {factory!r} stay on disk (memory-mapped); it runs on the CPU"
    try:
        return faiss.index_cpu_to_all_gpus(index), None
    except (RuntimeError, AttributeError) as exc:
        return None, f"FAISS cannot run {factory!r} on the GPU ({_faiss_reason(exc)}); it runs on the CPU"


def _save(index: Any, meta: dict[str, Any], faiss_path: Path, json_path: Path, mode: int | None = None) -> None:
    """Write the index and its sidecar atomically, with the store file's permission bits."""
    import faiss

    def write_index(tmp: Path) -> None:
        # through Python's file object: a full disk is an OSError here (FAISS's own FILE* writer
        # prints its close error on stderr)
        with open(tmp, "wb") as out:
            faiss.write_index(index, faiss.PyCallbackIOWriter(out.write))  # type: ignore[attr-defined]
        meta["bytes"] = tmp.stat().st_size
        meta["sha256"] = file_digest(tmp)

    try:
        save_pair(write_index, meta, faiss_path, json_path, mode)
    except OSError as exc:
        raise write_error(faiss_path, exc) from None
    except RuntimeError as exc:
        raise write_error(faiss_path, exc, _faiss_reason(exc)) from None
    faiss_path.with_suffix(".ivfdata").unlink(missing_ok=True)  # the lists of a cluster build this replaced


def _faiss_reason(exc: BaseException) -> str:
    """The human part of a FAISS C++ error (drops the function signature and source line)."""
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    match = re.search(r"\.(?:cpp|h):\d+: (.*)", line)
    reason = match.group(1) if match else line
    return re.sub(r"^Error: '.*?' failed: ", "", reason)


def describe_indexes(store_path: str | os.PathLike) -> list[dict[str, Any]]:
    """One entry per index saved beside the store, from its sidecar: file, encoder, split, name,
    factory, rows, bytes, tuned search parameters, recall@10 on held-out rows and its target, and
    its memory: ``resident_bytes`` read into RAM when loaded (the ``.faiss`` file) and
    ``on_disk_bytes`` of inverted lists left on disk and memory-mapped (the ``.ivfdata`` file, 0
    for an index held in RAM)."""
    out = []
    for json_path, meta in sidecars(store_path):
        key = next((k for k in meta if k.startswith("recall_at_")), None)
        on_disk = meta.get("ivfdata_bytes") if meta.get("ivfdata") else 0
        out.append({"file": json_path.with_suffix(".faiss").name, "encoder": meta.get("encoder"),
                    "resident_bytes": meta.get("bytes"), "on_disk_bytes": on_disk,
                    "split": meta.get("split"), "name": meta.get("name"), "factory": meta.get("factory"),
                    "ntotal": meta.get("ntotal"), "bytes": meta.get("bytes"),
                    "search_params": meta.get("search_params"), "recall_at_10": meta.get(key) if key else None,
                    "recall_target": meta.get("recall_target"), "target_met": meta.get("target_met"),
                    "readable": meta.get("format") == SIDECAR_FORMAT})
    return out

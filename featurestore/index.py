"""FAISS indexes over a store's image features, saved beside the store and tied to its rows.

An index covers the *valid* rows of one split for one encoder, in row order, so a search
position ``p`` names ``store.ids(split)[p]``. Vectors are L2-normalized and compared by inner
product (cosine similarity). A JSON sidecar records what the index was built from (encoder,
weights, a fingerprint of the split's valid ids), so a store that grew or changed is detected
and the index rebuilt instead of silently answering with stale positions.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.errors import FeatureStoreError, NotFoundError, ProvenanceError
from featurestore.store import FeatureStore, h5_name

SIDECAR_FORMAT = 1
GPU_MAX_K = 2048

StoreLike = FeatureStore | str | os.PathLike


def index_paths(store_path: str | os.PathLike, encoder: str, split: str, factory: str = "Flat") -> tuple[Path, Path]:
    """The ``.faiss`` file and ``.json`` sidecar of an index, beside the store file.

    Named ``<store>.<encoder, / -> |>.<split>.<factory slug>.faiss`` so every encoder, split
    and factory of one store gets its own pair of files.
    """
    base = f"{Path(store_path).name}.{h5_name(encoder)}.{h5_name(split)}.{factory_slug(factory)}"
    parent = Path(store_path).parent
    return parent / f"{base}.faiss", parent / f"{base}.json"


def factory_slug(factory: str) -> str:
    """A file-name-safe form of a FAISS factory string (``IVF4,Flat`` -> ``IVF4_Flat``)."""
    return re.sub(r"[^A-Za-z0-9.=_-]", "_", factory.strip())


def ids_fingerprint(ids: Iterable[str]) -> str:
    """SHA-1 of the ids joined by newlines: identifies the exact row set an index covers."""
    return hashlib.sha1("\n".join(ids).encode("utf-8")).hexdigest()


class StoreIndex:
    """A FAISS index over one split's valid rows, with the sidecar metadata it was built from.

    ``index`` is the CPU index (what is saved); searches run on a GPU copy when GPUs exist.
    """

    def __init__(self, index: Any, meta: dict[str, Any], path: Path | None = None) -> None:
        self.index = index
        self.meta = meta
        self.path = path
        self._search_index = _to_gpu(index) or index
        ivf = _ivf(index)
        self._default_nprobe = int(ivf.nprobe) if ivf is not None else None

    def __repr__(self) -> str:
        return (f"StoreIndex({self.meta['factory']!r}, encoder={self.meta['encoder']!r}, "
                f"split={self.meta['split']!r}, ntotal={self.ntotal})")

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors (the split's valid rows when built)."""
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` cosine neighbours of each query: ``(scores (Q, k') float32, positions (Q, k') int64)``.

        Queries are L2-normalized first. ``k`` is clamped to ``ntotal`` (``k' = min(k, ntotal)``).
        An approximate index (IVF with a small ``nprobe``, HNSW) may still find fewer than ``k'``
        neighbours: those slots are padded with position -1 and score -inf, after the real ones.
        ``nprobe`` (IVF lists visited) applies to IVF indexes only; None keeps the index's default.
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
        self._set_nprobe(nprobe)
        faiss.normalize_L2(q)
        target = self._search_index if k <= GPU_MAX_K else self.index
        scores, positions = target.search(q, k)
        scores = np.asarray(scores, dtype=np.float32)
        positions = np.asarray(positions, dtype=np.int64)
        scores[positions < 0] = -np.inf
        return scores, positions

    def _set_nprobe(self, nprobe: int | None) -> None:
        import faiss

        if self._default_nprobe is None:
            if nprobe is not None:
                raise FeatureStoreError(f"nprobe applies to IVF indexes only; {self.meta['factory']!r} has no IVF lists")
            return
        value = self._default_nprobe if nprobe is None else int(nprobe)
        if value < 1:
            raise FeatureStoreError(f"nprobe must be at least 1, not {nprobe}")
        _ivf(self.index).nprobe = value
        if self._search_index is not self.index:
            faiss.GpuParameterSpace().set_index_parameter(self._search_index, "nprobe", value)

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


FLAT_MAX_ROWS = 100_000
HNSW_MAX_ROWS = 500_000
RECALL_QUERIES = 200


def choose_factory(n: int, dim: int) -> str:
    """The factory ``auto`` means: exact ``Flat`` up to 100k rows, ``HNSW32`` up to 500k, then
    ``IVF<4 sqrt(n), power of 2>,PQ<dim/8>`` (64-byte codes for 512-d)."""
    if n <= FLAT_MAX_ROWS:
        return "Flat"
    if n <= HNSW_MAX_ROWS:
        return "HNSW32"
    nlist = 1 << int(round(np.log2(4 * np.sqrt(n))))
    m = next(m for m in (dim // 8, dim // 4, dim // 2, dim) if m > 0 and dim % m == 0)
    return f"IVF{nlist},PQ{m}"


def exact_topk(fs: FeatureStore, encoder: str, split: str, queries: np.ndarray, k: int,
               chunk_rows: int = 65536) -> np.ndarray:
    """Positions of the exact cosine top-k of normalized ``queries``, streaming the store."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_pos = np.zeros((len(queries), 0), dtype=np.int64)
    for positions, block in fs.iter_features(encoder, split, chunk_rows=chunk_rows):
        block = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        scores = np.concatenate([best_scores, queries @ block.T], axis=1)
        pos = np.concatenate([best_pos, np.broadcast_to(positions, (len(queries), len(positions)))], axis=1)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best_scores, best_pos = np.take_along_axis(scores, top, 1), np.take_along_axis(pos, top, 1)
    return best_pos


def build_index(store: StoreLike, encoder: str, split: str, factory: str = "Flat", *,
                chunk_rows: int = 65536, train_size: int | None = None, seed: int = 0,
                quiet: bool = False) -> StoreIndex:
    """Build, save (beside the store) and return a cosine index over a split's valid rows.

    ``factory="auto"`` picks one by size (:func:`choose_factory`). Factories that need
    training (IVF, PQ) are trained on a seeded random sample of the stored rows,
    ``max(39 * nlist, 10000)`` by default, capped at the number of rows. Approximate indexes
    record their recall@10 against exact search (on 200 stored rows as queries) in ``meta``.
    """
    import faiss
    from tqdm.auto import tqdm

    with _opened(store) as fs:
        ids = fs.ids(split)
        n = len(ids)
        if factory == "auto":
            factory = choose_factory(n, int(fs.encoder_info(encoder)["embed_dim"]))
        expected = _expected_meta(fs, encoder, split, factory, ids)
        chunks = fs.iter_features(encoder, split, chunk_rows=chunk_rows)
        first = next(chunks, None)
        if first is None or n == 0:
            raise FeatureStoreError(f"split {split!r} has no valid rows with {encoder!r} features to index")
        dim = int(first[1].shape[1])
        cpu_index = _make_index(factory, dim)
        gpu_index = _to_gpu(cpu_index)
        index = gpu_index or cpu_index
        if not cpu_index.is_trained:
            sample = _training_sample(fs, encoder, split, n, _train_count(cpu_index, factory, n, train_size),
                                      seed, chunk_rows, quiet)
            try:
                index.train(sample)
            except RuntimeError as exc:
                raise FeatureStoreError(f"FAISS could not train {factory!r}: {_faiss_reason(exc)}") from None
        added = 0
        with tqdm(total=n, desc=f"index {split}", unit="row", disable=quiet) as bar:
            for _, block in _first_rows(itertools.chain([first], chunks), n):
                vectors = np.ascontiguousarray(block, dtype=np.float32)
                faiss.normalize_L2(vectors)
                index.add(vectors)
                added += len(vectors)
                bar.update(len(vectors))
        if added != n:
            raise FeatureStoreError(f"split {split!r} changed while it was being indexed; build the index again")
        if gpu_index is not None:
            cpu_index = faiss.index_gpu_to_cpu(gpu_index)
        meta = {**expected, "ntotal": int(cpu_index.ntotal), "dim": dim, "metric": "inner_product",
                "normalized": True, "faiss_version": faiss.__version__}
        if factory != "Flat":
            meta["recall_at_10"] = _build_recall(StoreIndex(cpu_index, meta), fs, encoder, split, n, seed, chunk_rows)
        faiss_path, json_path = index_paths(fs.path, encoder, split, factory)
    _save(cpu_index, meta, faiss_path, json_path)
    return StoreIndex(cpu_index, meta, faiss_path)


def _build_recall(index: StoreIndex, fs: FeatureStore, encoder: str, split: str, n: int, seed: int,
                  chunk_rows: int) -> float:
    """recall@10 of a fresh approximate index against exact search, stored rows as queries."""
    picked = np.sort(np.random.default_rng(seed + 1).choice(n, size=min(RECALL_QUERIES, n), replace=False))
    X = fs.features(encoder, split) if n <= chunk_rows else None
    if X is None:
        rows = [block[np.isin(pos, picked)] for pos, block in fs.iter_features(encoder, split, chunk_rows=chunk_rows)]
        queries = np.concatenate(rows)
    else:
        queries = X[picked]
    queries = (queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    k = min(10, n)
    exact = exact_topk(fs, encoder, split, queries, k, chunk_rows)
    _, approx = index.search(queries, k)
    return recall_at_k(approx, exact, k)


def load_index(store: StoreLike, encoder: str, split: str, factory: str = "Flat", *,
               rebuild_stale: bool = True, quiet: bool = False) -> StoreIndex:
    """Load a saved index if it still matches the store's rows; otherwise rebuild it.

    Stale means the split's valid ids, the encoder's weights or the factory differ from the
    sidecar (a moved store keeps its index). With ``rebuild_stale=False`` a stale index raises
    FeatureStoreError and a missing one NotFoundError instead of being (re)built.
    """
    import faiss

    with _opened(store) as fs:
        if factory == "auto":
            factory = choose_factory(len(fs.ids(split)), int(fs.encoder_info(encoder)["embed_dim"]))
        faiss_path, json_path = index_paths(fs.path, encoder, split, factory)
        if not (faiss_path.exists() and json_path.exists()):
            if not rebuild_stale:
                raise NotFoundError(f"no {factory!r} index of {encoder!r} / {split!r} beside {fs.path}; build it first")
            return build_index(fs, encoder, split, factory, quiet=quiet)
        expected = _expected_meta(fs, encoder, split, factory, fs.ids(split))
        meta = _read_sidecar(json_path)
        reason = _stale_reason(meta, expected)
        index = None
        if reason is None:
            try:
                index = faiss.read_index(str(faiss_path))
            except RuntimeError:
                reason = "its .faiss file is unreadable"
            else:
                if int(index.ntotal) != meta["ntotal"]:
                    reason = "its .faiss file does not match its sidecar"
        if reason is None:
            return StoreIndex(index, meta, faiss_path)
        if not rebuild_stale:
            raise FeatureStoreError(
                f"index {faiss_path.name} is stale ({reason}); rebuild it with build_index or load_index(rebuild_stale=True)"
            )
        return build_index(fs, encoder, split, factory, quiet=quiet)


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


def _expected_meta(fs: FeatureStore, encoder: str, split: str, factory: str, ids: np.ndarray) -> dict[str, Any]:
    info = fs.encoder_info(encoder)
    return {
        "format": SIDECAR_FORMAT,
        "store": str(fs.path.resolve()),
        "encoder": encoder,
        "split": split,
        "factory": factory,
        "model": info.get("model"),
        "weights": info.get("weights"),
        "n_ids": len(ids),
        "ids_sha1": ids_fingerprint(ids),
    }


def _read_sidecar(json_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _stale_reason(meta: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """Why a sidecar no longer matches the store, or None when it does."""
    if not meta or meta.get("format") != SIDECAR_FORMAT or "ntotal" not in meta:
        return "its sidecar is unreadable or from another featurestore version"
    for field, what in (("encoder", "another encoder"), ("split", "another split"), ("factory", "another factory"),
                        ("model", "another model"), ("weights", "other weights")):
        if meta.get(field) != expected[field]:
            return f"built with {what}: {meta.get(field)!r}, the store has {expected[field]!r}"
    if meta.get("n_ids") != expected["n_ids"]:
        return f"it holds {meta.get('n_ids')} rows, the split now has {expected['n_ids']} valid rows"
    if meta.get("ids_sha1") != expected["ids_sha1"]:
        return "the split's valid ids changed"
    return None


def _make_index(factory: str, dim: int) -> Any:
    import faiss

    try:
        return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise FeatureStoreError(
            f"FAISS cannot build a cosine (inner-product) index from factory string {factory!r}: {_faiss_reason(exc)}"
        ) from None


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
    count = max(39 * nlist, 10000) if train_size is None else int(train_size)
    count = min(count, n)
    if count < max(nlist, 1):
        raise FeatureStoreError(f"train_size={train_size} is smaller than the {nlist} IVF lists of {factory!r}")
    return count


def _training_sample(fs: FeatureStore, encoder: str, split: str, n: int, count: int, seed: int,
                     chunk_rows: int, quiet: bool) -> np.ndarray:
    """Normalized features of ``count`` seeded-random valid rows, streamed chunk by chunk."""
    import faiss
    from tqdm.auto import tqdm

    wanted = np.sort(np.random.default_rng(seed).choice(n, size=count, replace=False))
    parts = []
    with tqdm(total=n, desc=f"sample {split}", unit="row", disable=quiet) as bar:
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


def _to_gpu(index: Any) -> Any | None:
    """A copy of ``index`` on all GPUs, or None without GPUs or for index types FAISS cannot move."""
    import faiss

    if faiss.get_num_gpus() <= 0:
        return None
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except (RuntimeError, AttributeError):
        return None


def _save(index: Any, meta: dict[str, Any], faiss_path: Path, json_path: Path) -> None:
    """Write the index then its sidecar, each atomically; the old sidecar goes first, so a crash
    in between leaves an index without sidecar (rebuilt on load), never a mismatched pair."""
    import faiss

    try:
        json_path.unlink(missing_ok=True)
        _atomic_write(faiss_path, lambda tmp: faiss.write_index(index, str(tmp)))
        _atomic_write(json_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8"))
    except OSError as exc:
        raise FeatureStoreError(f"cannot write index {faiss_path}: {exc.strerror or exc}") from None
    except RuntimeError as exc:
        raise FeatureStoreError(f"cannot write index {faiss_path}: {_faiss_reason(exc)}") from None


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _faiss_reason(exc: BaseException) -> str:
    """The human part of a FAISS C++ error (drops the function signature and source line)."""
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    match = re.search(r"\.(?:cpp|h):\d+: (.*)", line)
    reason = match.group(1) if match else line
    return re.sub(r"^Error: '.*?' failed: ", "", reason)

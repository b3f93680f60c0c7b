"""What `fs serve` answers from: one store's splits, their FAISS indexes and its encoder, loaded once.

A :class:`StoreSearcher` takes a snapshot at start-up: the rows each split had committed then
(ids, paths, labels, validity, error reasons) and one index per split, loaded or built as
`fs search` does. Every request is answered from that snapshot, so a query costs one encoder
forward pass and one index search, never a store scan; rows a writer appends later are served
after a restart. Row numbers (``row``) are positions among a split's committed rows, valid or
not, the numbering `/thumb/<split>/<row>` uses.
"""
from __future__ import annotations

import io
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import numpy as np

from featurestore.errors import FeatureStoreError
from featurestore.index.store_index import StoreIndex, ids_fingerprint, load_index
from featurestore.store.feature_store import FeatureStore

MAX_UPLOAD_BYTES = 20 * 2**20
# Decoded pixels of a query upload, checked from the image header before decoding: Pillow's own
# bomb limit lets a 13000 x 13000 PNG through (about 1 GB of memory per request).
MAX_UPLOAD_PIXELS = 50_000_000
TEXT_CACHE = 256


class QueryError(FeatureStoreError):
    """A request the server refuses: answered with ``status`` (a 4xx) and a one-line message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServedSplit:
    """One split's committed rows at start-up and the index over its valid rows."""

    name: str
    ids: np.ndarray
    paths: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    reasons: np.ndarray
    classes: list[str] | None
    index: StoreIndex
    valid_rows: np.ndarray = field(init=False)
    row_of_id: dict[str, int] = field(init=False)
    flat: np.ndarray | None = field(init=False)

    def __post_init__(self) -> None:
        self.valid_rows = np.flatnonzero(self.valid)
        self.row_of_id = {str(rid): i for i, rid in enumerate(self.ids)}
        self.flat = flat_vectors(self.index)

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    def class_name(self, label: int) -> str | None:
        if self.classes is None or not 0 <= label < len(self.classes):
            return None
        return self.classes[label]

    def label_of(self, class_name: str) -> int:
        """The label of a class name; QueryError when the split has no such class."""
        if self.classes is None:
            raise QueryError(f"split {self.name!r} has no class names, so it cannot be filtered by class")
        try:
            return self.classes.index(class_name)
        except ValueError:
            shown = ", ".join(self.classes[:20]) + (" ..." if len(self.classes) > 20 else "")
            raise QueryError(f"no class {class_name!r} in split {self.name!r} (it has: {shown})", 404) from None

    def row(self, text: str | int) -> int:
        """A committed row number given as text; QueryError when it is not one."""
        try:
            row = int(text)
        except (TypeError, ValueError):
            raise QueryError(f"row must be an integer, not {str(text)[:60]!r}") from None
        if not 0 <= row < self.n_rows:
            raise QueryError(f"row {row} is out of range: split {self.name!r} has rows 0..{self.n_rows - 1}", 404)
        return row

    def describe(self, row: int, score: float | None = None) -> dict[str, Any]:
        """The JSON of one row: id, row, label, class, thumbnail URL (and score for a hit)."""
        label = int(self.labels[row])
        out: dict[str, Any] = {"id": str(self.ids[row]), "row": int(row)}
        if score is not None:
            out["score"] = float(score)
        out.update(label=label, **{"class": self.class_name(label)}, thumb=thumb_url(self.name, row))
        return out


def thumb_url(split: str, row: int) -> str:
    """The page-relative URL of a row's thumbnail."""
    return f"/thumb/{quote(split, safe='')}/{int(row)}"


class StoreSearcher:
    """A store's splits, indexes and encoder, loaded once and searched many times.

    ``splits`` None serves every split that has this encoder's features (a split whose features
    are unfinished is skipped and reported in :attr:`skipped`); named splits must all load.
    ``encoder_model`` is the loaded encoder (None for a server answering id queries only).
    """

    def __init__(self, store: str, encoder: str, splits: Sequence[str] | None = None, *, factory: str = "Flat",
                 encoder_model: Any = None, quiet: bool = False) -> None:
        self.store_path = str(store)
        self.encoder = encoder
        self.factory = factory
        self.model = encoder_model
        self.skipped: list[dict[str, str]] = []
        self._lock = threading.Lock()
        # the page repeats a text query when only k, the class or the split changes
        self._encode_text = lru_cache(maxsize=TEXT_CACHE)(self._encode_text_uncached)
        self._store = FeatureStore(store)
        try:
            self.encoder_info = self._store.encoder_info(encoder)
            self.encoders = self._store.encoders()
            self.splits: dict[str, ServedSplit] = {}
            names = (list(splits) if splits
                     else [s for s in self._store.splits() if self._store.has_features(encoder, s)])
            if not names:
                raise FeatureStoreError(f"encoder {encoder!r} has no image features in {store}; run fs extract")
            for name in names:
                try:
                    self.splits[name] = self._load_split(name, quiet)
                except FeatureStoreError as exc:
                    if splits:
                        raise
                    self.skipped.append({"split": name, "reason": str(exc)})
            if not self.splits:
                reasons = "; ".join(f"{s['split']}: {s['reason']}" for s in self.skipped)
                raise FeatureStoreError(f"no split of {store} can be served ({reasons})")
        except BaseException:
            self._store.close()
            raise
        self.default_split = next(iter(self.splits))

    @property
    def text_queries(self) -> bool:
        """Whether text queries can be answered (an encoder with a text tower was loaded)."""
        return self.model is not None and bool(getattr(self.model, "has_text", True))

    def close(self) -> None:
        self._store.close()

    def _load_split(self, name: str, quiet: bool) -> ServedSplit:
        store = self._store
        index = load_index(store, self.encoder, name, self.factory, quiet=quiet)
        valid = store.valid(name)
        ids = store.ids(name, valid_only=False)
        if ids_fingerprint(ids[valid]) != index.meta["ids_sha1"]:
            raise FeatureStoreError(f"split {name!r} changed while it was being loaded; start fs serve again")
        reasons = np.full(len(ids), "", dtype=object)
        row_of_id = {str(rid): i for i, rid in enumerate(ids)}
        for error in store.errors(name):
            reasons[row_of_id[str(error["id"])]] = str(error["reason"]) or "unreadable"
        return ServedSplit(name=name, ids=ids, paths=store.paths(name, valid_only=False),
                           labels=store.labels(name, valid_only=False), valid=valid, reasons=reasons,
                           classes=store.classes(name), index=index)

    # ------------------------------------------------------------------ lookups
    def split(self, name: str | None) -> ServedSplit:
        """A served split by name (the default split when None); QueryError 404 otherwise."""
        if name is None or name == "":
            return self.splits[self.default_split]
        served = self.splits.get(name)
        if served is None:
            raise QueryError(f"no split {name!r} is served (served: {', '.join(self.splits)})", 404)
        return served

    def _split_holding(self, row_id: str) -> ServedSplit:
        """The one served split that has a row with this id (an id query without a split)."""
        holding = [s for s in self.splits.values() if row_id in s.row_of_id]
        if not holding:
            raise QueryError(f"no row with id {row_id!r} in any served split ({', '.join(self.splits)})", 404)
        if len(holding) > 1:
            raise QueryError(f"id {row_id!r} is in splits {', '.join(s.name for s in holding)}: give split")
        return holding[0]

    def info(self, max_unreadable: int = 1000) -> dict[str, Any]:
        """Splits, row counts, classes with their row counts, encoders and unreadable rows."""
        splits = []
        for s in self.splits.values():
            bad = np.flatnonzero(~s.valid)
            counts = np.bincount(s.labels[s.valid_rows][s.labels[s.valid_rows] >= 0],
                                 minlength=len(s.classes or []))
            splits.append({
                "name": s.name, "rows": s.n_rows, "valid": len(s.valid_rows), "indexed": s.index.ntotal,
                "factory": s.index.meta["factory"], "unlabelled": int(np.sum(s.labels[s.valid_rows] < 0)),
                "index_bytes": {"in_ram": s.index.meta.get("bytes"),  # an on-disk index's lists: memory-mapped
                                "on_disk": s.index.meta.get("ivfdata_bytes", 0) if s.index.meta.get("ivfdata") else 0},
                "classes": None if s.classes is None else
                [{"name": c, "rows": int(counts[i])} for i, c in enumerate(s.classes)],
                "unreadable": {"count": len(bad), "truncated": bool(len(bad) > max_unreadable),
                               "rows": [self._unreadable(s, int(r)) for r in bad[:max_unreadable]]},
            })
        info = self.encoder_info
        return {
            "store": self.store_path, "encoder": self.encoder,
            "model": info.get("model"), "weights": info.get("weights"), "embed_dim": info.get("embed_dim"),
            "text_queries": self.text_queries, "image_queries": self.model is not None, "encoders": self.encoders,
            "default_split": self.default_split, "splits": splits, "skipped_splits": self.skipped,
        }

    @staticmethod
    def _unreadable(s: ServedSplit, row: int) -> dict[str, Any]:
        return {"row": row, "id": str(s.ids[row]), "path": str(s.paths[row]), "reason": str(s.reasons[row])}

    def rows(self, split: str | None, class_name: str | None = None, offset: int = 0,
             limit: int = 100) -> dict[str, Any]:
        """A page of a split's valid rows in row order, of one class when ``class_name`` is given."""
        s = self.split(split)
        offset, limit = _page(offset, limit)
        rows = s.valid_rows
        if class_name:
            rows = rows[s.labels[rows] == s.label_of(class_name)]
        return {"split": s.name, "class": class_name or None, "total": len(rows), "offset": offset,
                "rows": [s.describe(int(r)) for r in rows[offset:offset + limit]]}

    def unreadable(self, split: str | None, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of a split's unreadable rows with the reason recorded at extraction."""
        s = self.split(split)
        offset, limit = _page(offset, limit)
        bad = np.flatnonzero(~s.valid)
        return {"split": s.name, "total": len(bad), "offset": offset,
                "rows": [self._unreadable(s, int(r)) for r in bad[offset:offset + limit]]}

    # ------------------------------------------------------------------ searches
    def search_text(self, text: str, k: int, split: str | None = None,
                    class_name: str | None = None) -> dict[str, Any]:
        """The ``k`` rows closest to a text (encoded by the store's encoder)."""
        if not text.strip():
            raise QueryError("text is empty")
        if not self.text_queries:
            raise QueryError(f"encoder {self.encoder!r} has no text tower here: search by id or by image")
        start = time.perf_counter()
        s = self.split(split)
        allowed = self._allowed(s, k, class_name)
        query = self._encode_text(text)
        return self._answer(s, query, k, class_name, allowed, start, {"text": text})

    def _encode_text_uncached(self, text: str) -> np.ndarray:
        import torch

        with self._lock:
            # one query is a few tokens wide: splitting its small products over threads costs
            # more than it saves (bench/RESULTS.md)
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                query = self.model.encode_texts([text])
            finally:
                torch.set_num_threads(threads)
        query.setflags(write=False)
        return query

    def search_id(self, row_id: str, k: int, split: str | None = None,
                  class_name: str | None = None) -> dict[str, Any]:
        """The ``k`` rows closest to a stored row (its stored features are the query); without
        ``split``, the served split that holds the id."""
        start = time.perf_counter()
        s = self.split(split) if split else self._split_holding(row_id)
        row = s.row_of_id.get(row_id)
        if row is None:
            raise QueryError(f"no row with id {row_id!r} in split {s.name!r}", 404)
        if not s.valid[row]:
            raise QueryError(f"row {row_id!r} of split {s.name!r} is unreadable ({s.reasons[row]}); it has no features",
                             422)
        allowed = self._allowed(s, k, class_name)
        if s.flat is not None:  # the row's normalized features, already in memory
            query = s.flat[np.searchsorted(s.valid_rows, row)]
        else:
            with self._lock:
                query, _ = self._store.read_rows(self.encoder, s.name, row, row + 1)
        return self._answer(s, query, k, class_name, allowed, start, {"id": row_id, "row": row})

    def search_image(self, data: bytes, k: int, split: str | None = None, class_name: str | None = None,
                     filename: str | None = None) -> dict[str, Any]:
        """The ``k`` rows closest to an uploaded image (decoded and preprocessed as at extraction)."""
        start = time.perf_counter()
        if self.model is None:
            raise QueryError("this server answers id queries only (it was started without the encoder)")
        s = self.split(split)
        allowed = self._allowed(s, k, class_name)
        image = decode_upload(data)
        with self._lock:
            import torch

            query = self.model.encode_images(torch.stack([self.model.preprocess(image)]))
        return self._answer(s, query, k, class_name, allowed, start, {"image": filename or "upload"})

    @staticmethod
    def _allowed(s: ServedSplit, k: int, class_name: str | None) -> np.ndarray | None:
        """Checks ``k`` and the class before any encoding; returns the index positions of the
        class's rows (None without a class filter)."""
        label = s.label_of(class_name) if class_name else None
        if k < 1:
            raise QueryError(f"k must be at least 1, not {k}")
        if k > s.index.ntotal:
            raise QueryError(f"k={k} is larger than split {s.name!r} ({s.index.ntotal} indexed rows)")
        return None if label is None else np.flatnonzero(s.labels[s.valid_rows] == label)

    def _answer(self, s: ServedSplit, query: np.ndarray, k: int, class_name: str | None,
                allowed: np.ndarray | None, start: float, described: dict[str, Any]) -> dict[str, Any]:
        warnings: list[str] = []
        wanted = k
        if allowed is not None:
            wanted = min(k, len(allowed))
            if wanted < k:
                warnings.append(f"class {class_name!r} has {len(allowed)} rows in split {s.name!r}: "
                                f"{len(allowed)} hits, not {k}")
            with self._lock:  # FAISS skips the rows outside the class: faster than a full product
                scores, found = _filtered_search(s.index, query, wanted, allowed)
        elif s.flat is not None:
            scores, found = flat_search(s.flat, query, k)
        else:
            with self._lock:
                scores, found = s.index.search(query, k)
            scores, found = scores[0], found[0]
        keep = found >= 0
        if int(keep.sum()) < wanted:
            warnings.append(f"the {s.index.meta['factory']} index found {int(keep.sum())} of {wanted} neighbours "
                            "(an approximate index visits only part of the rows)")
        hits = [s.describe(int(s.valid_rows[p]), score) for score, p in zip(scores[keep], found[keep])]
        return {"query": described, "split": s.name, "class": class_name or None, "k": k, "hits": hits,
                "warnings": warnings, "took_ms": round((time.perf_counter() - start) * 1000, 3)}


def decode_upload(data: bytes) -> Any:
    """An uploaded file decoded to an RGB PIL image; QueryError when it is not a readable image."""
    from PIL import Image

    if not data:
        raise QueryError("the uploaded image is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise QueryError(f"the uploaded image is larger than {MAX_UPLOAD_BYTES // 2**20} MiB", 413)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_UPLOAD_PIXELS:
                raise QueryError(f"the uploaded image is {width} x {height} pixels; a query image has at most "
                                 f"{MAX_UPLOAD_PIXELS // 10**6} million pixels", 413)
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QueryError(f"the upload is not a readable image: {reason[:200]}") from None


def flat_vectors(index: StoreIndex) -> np.ndarray | None:
    """The (ntotal, d) float32 rows of an exact inner-product Flat index searched on the CPU, as a
    read-only view of FAISS's own memory (no copy); None for any other index."""
    import faiss

    cpu = faiss.downcast_index(index.index)
    if index.on_gpu or type(cpu) not in (faiss.IndexFlat, faiss.IndexFlatIP) \
            or cpu.metric_type != faiss.METRIC_INNER_PRODUCT or cpu.ntotal == 0:
        return None
    # faiss's bundled .pyi types downcast_index as returning the base Index (no get_xb)
    xb = cpu.get_xb()  # type: ignore[attr-defined]
    rows = faiss.rev_swig_ptr(xb, cpu.ntotal * cpu.d).reshape(cpu.ntotal, cpu.d)
    rows.setflags(write=False)
    return rows


def flat_search(rows: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of one query over a Flat index's ``rows``: one BLAS matrix-vector product
    and a partial sort, where FAISS answers a single query on one thread (slower: bench/RESULTS.md).
    The hits are FAISS's: the ``k`` best by score, the lowest positions kept among equal scores,
    and those listed from the highest position down, as FAISS's heap returns them."""
    import faiss

    q = np.array(query, dtype=np.float32, copy=True, order="C").reshape(1, -1)
    faiss.normalize_L2(q)
    scores = rows @ q[0]
    k = min(int(k), len(scores))
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)  # ascending: the lowest positions stay
        keep = np.concatenate([above, tied[:k - len(above)]])
    else:
        keep = np.arange(len(scores))
    keep = keep[np.lexsort((-keep, -scores[keep]))]
    return scores[keep].astype(np.float32), keep.astype(np.int64)


def _filtered_search(index: StoreIndex, query: np.ndarray, k: int,
                     positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of one query among the index ``positions`` only (FAISS ID selector, on the CPU
    index, exact for Flat); missing neighbours are position -1."""
    import faiss

    if k == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    q = np.array(query, dtype=np.float32, copy=True, order="C").reshape(1, -1)
    faiss.normalize_L2(q)
    selector = faiss.IDSelectorBatch(np.ascontiguousarray(positions, dtype=np.int64))
    cpu = index.index
    ivf = faiss.try_extract_index_ivf(cpu)
    # faiss's bundled .pyi lacks SearchParametersHNSW and the keyword constructors SWIG generates
    params: Any
    if ivf is not None:
        params = faiss.SearchParametersIVF(sel=selector, nprobe=int(ivf.nprobe))  # type: ignore[call-arg]
    elif isinstance(cpu, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=int(cpu.hnsw.efSearch))  # type: ignore[attr-defined]
    else:
        params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
    try:
        scores, found = cpu.search(q, k, params=params)
    except RuntimeError as exc:
        raise QueryError(f"a {index.meta['factory']} index cannot be searched with a class filter: "
                         f"{str(exc).splitlines()[0][:200]}") from None
    return np.asarray(scores[0], np.float32), np.asarray(found[0], np.int64)


def _page(offset: int, limit: int) -> tuple[int, int]:
    if offset < 0:
        raise QueryError(f"offset must be at least 0, not {offset}")
    if not 1 <= limit <= 1000:
        raise QueryError(f"limit must be between 1 and 1000, not {limit}")
    return offset, limit

"""The HDF5 feature store: one ``.h5`` file holding splits, encoders' features, text banks, models.

Layout and crash-safety rules are written down in docs/store-format.md. In short: every
array is row-aligned with ``/splits/<split>``; a row is data only once it is *committed*
(split rows below ``n_rows``; an encoder's rows where its ``done`` mask is set), and the commit
marker is written and flushed only after the data it covers, in SWMR order. A writer killed at
any moment therefore leaves a store whose committed part is intact, and a re-run redoes exactly
the uncommitted rows.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featurestore.errors import FeatureStoreError, NotFoundError, ProvenanceError, StoreFormatError
from featurestore.split_names import check_split_name
from featurestore.superblock import clear_consistency_flags
from featurestore.writer_lock import WriterLock

FORMAT_VERSION = 1
STR = h5py.string_dtype("utf-8")
ROW_CHUNK = 4096
CHUNK_CACHE_BYTES = 64 * 2**20


def h5_name(key: str) -> str:
    """HDF5 object name for a user-facing key (keys like ``ViT-B-32/openai`` hold slashes)."""
    return key.replace("/", "|")


def _key(name: str) -> str:
    return name.replace("|", "/")


class FeatureStore:
    """A store file opened for reading (``mode="r"``, the default) or writing (``mode="a"``).

    Readers open in SWMR-read mode and may read while one writer appends. A writer takes the
    store's lock; a second writer is refused with :class:`StoreLockedError`.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "r") -> None:
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', not {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self._lock: WriterLock | None = None
        self._handles: dict[str, h5py.Dataset] = {}
        if mode == "r":
            if not self.path.exists():
                raise NotFoundError(f"no store at {self.path}")
            self._file = self._open_reader()
        else:
            self._lock = WriterLock(self.path)
            self._lock.acquire()
            try:
                self._file = self._open_writer()
            except BaseException:
                self._lock.release()
                raise
        self._check_format()

    # ------------------------------------------------------------------ opening and closing
    def _open_reader(self) -> h5py.File:
        try:
            return h5py.File(self.path, "r", libver="latest", swmr=True, locking=False,
                             rdcc_nbytes=CHUNK_CACHE_BYTES)
        except OSError as exc:
            if "already open for write" in str(exc):
                raise StoreFormatError(
                    f"{self.path} is being restructured by a writer right now; try again in a moment"
                ) from None
            raise StoreFormatError(f"{self.path} is not a readable HDF5 store ({exc})") from None

    def _open_writer(self) -> h5py.File:
        if not self.path.exists():
            f = h5py.File(self.path, "w", libver="latest", locking=False)
            from featurestore import __version__

            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["created_by"] = f"featurestore {__version__}"
            for group in ("splits", "classes", "encoders", "models"):
                f.create_group(group)
            f.flush()
            f.close()
        else:
            # We hold the writer lock, so a "still open for write" mark is a dead writer's.
            try:
                clear_consistency_flags(self.path)
            except ValueError as exc:
                raise StoreFormatError(f"{self.path} is not an HDF5 store ({exc})") from None
        try:
            return h5py.File(self.path, "a", libver="latest", locking=False,
                             rdcc_nbytes=CHUNK_CACHE_BYTES)
        except OSError as exc:
            raise StoreFormatError(f"{self.path} is not a writable HDF5 store ({exc})") from None

    def _check_format(self) -> None:
        version = self._file.attrs.get("format_version")
        if version is None:
            self.close()
            raise StoreFormatError(f"{self.path} is an HDF5 file but not a featurestore store")
        if int(version) > FORMAT_VERSION:
            self.close()
            raise StoreFormatError(
                f"{self.path} has store format {int(version)}; this featurestore reads up to "
                f"{FORMAT_VERSION}: upgrade featurestore"
            )

    def close(self) -> None:
        """Flush and close the file, then release the writer lock."""
        if getattr(self, "_file", None) is not None and self._file.id.valid:
            self._file.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, splits={self.splits()}, encoders={self.encoders()})"

    @property
    def file(self) -> h5py.File:
        """The open h5py file (for advanced reads; writing through it bypasses the rules)."""
        return self._file

    def _get(self, path: str) -> Any:
        """An object by path; a reader's datasets are refreshed (SWMR) to see new commits.

        Readers keep one handle per dataset: refreshing one of two open handles of the same
        dataset corrupts HDF5's metadata cache ("can't insert duplicate key").
        """
        if self.mode != "r":
            return self._file.get(path)
        key = path if path.startswith("/") else f"/{path}"
        obj = self._handles.get(key)
        if obj is None:
            obj = self._file.get(key)
            if not isinstance(obj, h5py.Dataset):
                return obj
            self._handles[key] = obj
        obj.refresh()
        return obj

    def _reopen_writer(self) -> None:
        """Leave SWMR mode so new objects can be created (SWMR forbids creating objects)."""
        if self._file.swmr_mode:
            self._file.close()
            self._file = h5py.File(self.path, "a", libver="latest", locking=False,
                                   rdcc_nbytes=CHUNK_CACHE_BYTES)

    def _require_writer(self) -> None:
        if self.mode != "a":
            raise PermissionError(f"{self.path} is open read-only; open it with mode='a' to write")
        self._reopen_writer()

    # ------------------------------------------------------------------ listing
    def splits(self) -> list[str]:
        """Names of the splits (row sets) in the store."""
        return sorted(_key(n) for n in self._file["splits"])

    def encoders(self) -> list[str]:
        """Encoder keys that have features or text banks in the store."""
        return sorted(self._file["encoders"][n].attrs["key"] for n in self._file["encoders"])

    def text_banks(self, encoder: str) -> list[str]:
        """Names of the text banks encoded with ``encoder``."""
        texts = self._encoder_group(encoder).get("texts")
        return [] if texts is None else sorted(_key(n) for n in texts)

    def models(self) -> list[str]:
        """Names of the solvers saved in the store."""
        return sorted(_key(n) for n in self._file["models"])

    def class_sets(self) -> list[str]:
        """Names of the class-name lists under ``/classes``."""
        return sorted(_key(n) for n in self._file["classes"])

    # ------------------------------------------------------------------ split rows
    def _split(self, split: str) -> h5py.Group:
        group = self._file["splits"].get(h5_name(split))
        if group is None:
            raise NotFoundError(f"no split {split!r} in {self.path} (it has: {', '.join(self.splits()) or 'none'})")
        return group

    def n_rows(self, split: str) -> int:
        """Committed rows of a split, valid or not."""
        return int(self._get(f"{self._split(split).name}/n_rows")[()])

    def _column(self, split: str, name: str) -> np.ndarray:
        group = self._split(split)
        n = self.n_rows(split)
        ds = self._get(f"{group.name}/{name}")
        if ds.dtype.kind == "O":
            return np.asarray(ds.asstr()[:n], dtype=object)
        return ds[:n]

    def valid(self, split: str) -> np.ndarray:
        """Boolean mask of rows whose image decoded (all committed rows)."""
        return self._column(split, "valid").astype(bool)

    def _select(self, split: str, values: np.ndarray, valid_only: bool) -> np.ndarray:
        return values[self.valid(split)] if valid_only else values

    def ids(self, split: str, valid_only: bool = True) -> np.ndarray:
        """Row ids (paths relative to the source, or manifest / tar keys)."""
        return self._select(split, self._column(split, "ids"), valid_only)

    def paths(self, split: str, valid_only: bool = True) -> np.ndarray:
        """Where each row's image came from (file path, or ``tar::member``)."""
        return self._select(split, self._column(split, "paths"), valid_only)

    def labels(self, split: str, valid_only: bool = True) -> np.ndarray:
        """Integer labels (int64, -1 where a row has none)."""
        return self._select(split, self._column(split, "labels"), valid_only)

    def captions(self, split: str, valid_only: bool = True) -> np.ndarray | None:
        """Captions, or None when the split's source had none."""
        if not self._split(split).attrs.get("has_captions", False):
            return None
        return self._select(split, self._column(split, "captions"), valid_only)

    def classes(self, split: str) -> list[str] | None:
        """Class names of a labelled split (label i names ``classes[i]``), or None."""
        name = self._split(split).attrs.get("classes", "")
        return self.class_names(name) if name else None

    def class_names(self, name: str) -> list[str]:
        """A class-name list under ``/classes`` by its name."""
        ds = self._file["classes"].get(h5_name(name))
        if ds is None:
            raise NotFoundError(f"no class list {name!r} in {self.path} (it has: {', '.join(self.class_sets()) or 'none'})")
        return list(ds.asstr()[:])

    def errors(self, split: str) -> list[dict[str, str]]:
        """Rows that failed to decode: id, path and reason, in row order."""
        reasons = self._column(split, "errors")
        bad = np.flatnonzero(reasons != "")
        ids, paths = self._column(split, "ids"), self._column(split, "paths")
        return [{"id": ids[i], "path": paths[i], "reason": reasons[i]} for i in bad]

    def row_index(self, split: str) -> dict[str, int]:
        """Map of id -> row position over all committed rows."""
        return {rid: i for i, rid in enumerate(self._column(split, "ids"))}

    # ------------------------------------------------------------------ encoders and features
    def _encoder_group(self, encoder: str) -> h5py.Group:
        group = self._file["encoders"].get(h5_name(encoder))
        if group is None:
            raise NotFoundError(
                f"no encoder {encoder!r} in {self.path} (it has: {', '.join(self.encoders()) or 'none'})"
            )
        return group

    def encoder_info(self, encoder: str) -> dict[str, Any]:
        """Provenance of an encoder's arrays: model, weights, preprocessing, dim, versions."""
        attrs = self._encoder_group(encoder).attrs
        return {k: json.loads(v) if isinstance(v, str) and v[:1] in "{[" else _plain(v) for k, v in attrs.items()}

    def has_features(self, encoder: str, split: str) -> bool:
        """True when ``encoder`` has an image array for ``split`` (complete or not)."""
        group = self._file["encoders"].get(h5_name(encoder))
        return group is not None and f"images/{h5_name(split)}" in group

    def _image_paths(self, encoder: str, split: str) -> tuple[str, str]:
        group = self._encoder_group(encoder)
        name = h5_name(split)
        if f"images/{name}" not in group:
            self._split(split)
            raise NotFoundError(f"encoder {encoder!r} has no features for split {split!r}; run fs extract")
        return f"{group.name}/images/{name}", f"{group.name}/done/{name}"

    def done(self, encoder: str, split: str) -> np.ndarray:
        """Boolean mask over committed split rows: has ``encoder`` processed the row?"""
        _, done_path = self._image_paths(encoder, split)
        n = self.n_rows(split)
        mask = self._get(done_path)[:n].astype(bool)
        return np.pad(mask, (0, n - len(mask)))

    def _complete_rows(self, encoder: str, split: str, valid_only: bool) -> np.ndarray:
        done = self.done(encoder, split)
        if not done.all():
            raise NotFoundError(
                f"encoder {encoder!r} has features for {int(done.sum())} of {len(done)} rows of "
                f"split {split!r}; run fs extract again to finish"
            )
        rows = np.arange(len(done))
        return rows[self.valid(split)] if valid_only else rows

    def features(self, encoder: str, split: str, valid_only: bool = True,
                 dtype: np.dtype | type = np.float32) -> np.ndarray:
        """The (N, D) image features of a split, row-aligned with ``ids``/``labels``."""
        data_path, _ = self._image_paths(encoder, split)
        rows = self._complete_rows(encoder, split, valid_only)
        ds = self._get(data_path)
        whole = ds[: self.n_rows(split)]
        return np.ascontiguousarray(whole[rows], dtype=dtype)

    def iter_features(self, encoder: str, split: str, chunk_rows: int = 65536, valid_only: bool = True,
                      dtype: np.dtype | type = np.float32) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(row_positions, features)`` chunk by chunk, for stores larger than RAM.

        ``row_positions`` index the arrays returned by ``ids``/``labels`` with the same
        ``valid_only``.
        """
        data_path, _ = self._image_paths(encoder, split)
        rows = self._complete_rows(encoder, split, valid_only)
        ds = self._get(data_path)
        position = 0
        n = self.n_rows(split)
        for start in range(0, n, chunk_rows):
            stop = min(start + chunk_rows, n)
            chunk_rows_sel = rows[(rows >= start) & (rows < stop)]
            if len(chunk_rows_sel) == 0:
                continue
            block = ds[start:stop][chunk_rows_sel - start]
            yield np.arange(position, position + len(block)), np.asarray(block, dtype=dtype)
            position += len(block)

    def read_rows(self, encoder: str, split: str, start: int, stop: int,
                  dtype: np.dtype | type = np.float32) -> tuple[np.ndarray, np.ndarray]:
        """Features and labels of the valid committed rows in ``[start, stop)``: one chunk of
        an out-of-core pass (row ranges let Dask workers read disjoint parts of a store)."""
        data_path, done_path = self._image_paths(encoder, split)
        stop = min(stop, self.n_rows(split))
        if not self._get(done_path)[start:stop].astype(bool).all():
            raise NotFoundError(f"encoder {encoder!r} has not finished rows {start}..{stop} of split {split!r}; "
                                "run fs extract again to finish")
        group = self._split(split).name
        valid = self._get(f"{group}/valid")[start:stop].astype(bool)
        X = np.asarray(self._get(data_path)[start:stop][valid], dtype=dtype)
        return X, self._get(f"{group}/labels")[start:stop][valid]

    def views(self, encoder: str, split: str, valid_only: bool = True) -> np.ndarray:
        """The (N, V, D) augmented views stored by ``fs extract --views V``."""
        group = self._encoder_group(encoder)
        name = h5_name(split)
        if f"views/{name}" not in group:
            raise NotFoundError(f"encoder {encoder!r} has no augmented views for split {split!r}; extract with --views N")
        n = self.n_rows(split)
        done = self._get(f"{group.name}/views_done/{name}")[:n].astype(bool)
        if len(done) < n or not done.all():
            raise NotFoundError(f"augmented views of split {split!r} are incomplete; run fs extract --views again")
        data = self._get(f"{group.name}/views/{name}")[:n]
        return np.asarray(data[self.valid(split)] if valid_only else data, dtype=np.float32)

    # ------------------------------------------------------------------ text banks
    def text(self, encoder: str, bank: str) -> np.ndarray:
        """The bank's (C, D) zero-shot weights (class banks) or (K, D) text embeddings."""
        return np.asarray(self.text_bank(encoder, bank)["weights"], dtype=np.float32)

    def text_bank(self, encoder: str, bank: str) -> dict[str, Any]:
        """Everything in a text bank: ``weights``, ``strings``, and for class banks
        ``classes``, ``templates`` and ``per_template`` (C, T, D)."""
        group = self._encoder_group(encoder).get(f"texts/{h5_name(bank)}")
        if group is None:
            raise NotFoundError(
                f"no text bank {bank!r} for encoder {encoder!r} (it has: {', '.join(self.text_banks(encoder)) or 'none'}); run fs text"
            )
        out: dict[str, Any] = {"kind": group.attrs.get("kind", "list")}
        for name, ds in group.items():
            out[name] = list(ds.asstr()[:]) if ds.dtype.kind == "O" else ds[()]
        return out

    def text_bank_kind(self, encoder: str, bank: str) -> str:
        """The bank's kind ("classes", "list", "descriptors", ...), read from its attributes only."""
        return str(_plain(self._text_bank_group(encoder, bank).attrs.get("kind", "list")))

    def text_bank_field(self, encoder: str, bank: str, name: str) -> list[str] | np.ndarray | None:
        """One dataset of a bank (e.g. its ``classes``), or None; the weights are not read."""
        ds = self._text_bank_group(encoder, bank).get(name)
        if ds is None:
            return None
        return list(ds.asstr()[:]) if ds.dtype.kind == "O" else ds[()]

    def _text_bank_group(self, encoder: str, bank: str) -> h5py.Group:
        group = self._encoder_group(encoder).get(f"texts/{h5_name(bank)}")
        if group is None:
            raise NotFoundError(
                f"no text bank {bank!r} for encoder {encoder!r} (it has: {', '.join(self.text_banks(encoder)) or 'none'}); run fs text"
            )
        return group

    # ------------------------------------------------------------------ imported logits
    def logits_names(self) -> list[str]:
        """Names of the external classifiers whose logits were imported (``fs import-logits``)."""
        group = self._file.get("logits")
        return [] if group is None else sorted(_key(n) for n in group)

    def logits(self, name: str, split: str, valid_only: bool = True) -> tuple[np.ndarray, str]:
        """Imported (N, C) logits or probabilities of ``name`` for ``split``, row-aligned with
        ``ids(split)``, and their kind ("logits" | "probabilities")."""
        group = self._file.get(f"logits/{h5_name(name)}")
        if group is None:
            raise NotFoundError(f"no imported logits {name!r} in {self.path} (it has: {', '.join(self.logits_names()) or 'none'})")
        ds = group.get(h5_name(split))
        if ds is None:
            raise NotFoundError(f"imported logits {name!r} have no split {split!r} (they have: {', '.join(sorted(_key(n) for n in group))})")
        n = self.n_rows(split)
        if ds.shape[0] != n:
            raise NotFoundError(f"imported logits {name!r} cover {ds.shape[0]} rows but split {split!r} now has {n}; import them again")
        values = np.asarray(ds[()], dtype=np.float32)
        return self._select(split, values, valid_only), str(_plain(ds.attrs["kind"]))

    # ------------------------------------------------------------------ models
    def load_model(self, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and JSON metadata of a saved solver."""
        group = self._file["models"].get(h5_name(name))
        if group is None:
            raise NotFoundError(f"no model {name!r} in {self.path} (it has: {', '.join(self.models()) or 'none'})")
        arrays = {k: v[()] for k, v in group.items()}
        return arrays, json.loads(group.attrs["meta"])

    # ================================================================== writing
    def add_rows(self, split: str, ids: Sequence[str], paths: Sequence[str], labels: Sequence[int],
                 captions: Sequence[str | None] | None = None, classes: Sequence[str] | None = None,
                 source: str = "") -> np.ndarray:
        """Register rows of a split; ids already present keep their row. Returns each id's row.

        New rows are appended and committed (``n_rows`` bumped) only after their columns are
        flushed. Duplicate ids within ``ids`` are refused.
        """
        self._require_writer()
        check_split_name(split)
        ids = list(ids)
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise ValueError(f"duplicate id {dup!r} in the source of split {split!r}; ids must be unique")
        group = self._ensure_split(split, has_captions=captions is not None)
        if classes is not None:
            self._set_classes(group, split, list(classes))
        index = self.row_index(split)
        n = self.n_rows(split)
        new = [i for i, rid in enumerate(ids) if rid not in index]
        rows = np.array([index.get(rid, -1) for rid in ids], dtype=np.int64)
        rows[new] = np.arange(n, n + len(new))
        if new:
            if captions is not None and not group.attrs.get("has_captions", False):
                group.attrs["has_captions"] = True
            columns = {
                "ids": [ids[i] for i in new],
                "paths": [str(paths[i]) for i in new],
                "labels": np.asarray([labels[i] for i in new], dtype=np.int64),
                "captions": [(captions[i] or "") if captions is not None else "" for i in new],
                "valid": np.ones(len(new), dtype=bool),
                "errors": [""] * len(new),
            }
            for name, values in columns.items():
                ds = group[name]
                ds.resize((n + len(new),))
                ds[n:] = values
            self._file.flush()
            group["n_rows"][()] = n + len(new)
            self._file.flush()
        if source:
            group.attrs["source"] = source
        return rows

    def _ensure_split(self, split: str, has_captions: bool) -> h5py.Group:
        name = h5_name(split)
        splits = self._file["splits"]
        if name in splits:
            group = splits[name]
            if group["ids"].is_virtual:
                raise FeatureStoreError(
                    f"split {split!r} was extracted in shards (--cluster); extend it with --cluster too"
                )
            n = int(group["n_rows"][()])
            for column in ("ids", "paths", "labels", "captions", "valid", "errors"):
                if group[column].shape[0] != n:  # rows past the commit marker: a dead writer's
                    group[column].resize((n,))
            return group
        group = splits.create_group(name)
        for column, dtype in (("ids", STR), ("paths", STR), ("captions", STR), ("errors", STR),
                              ("labels", np.int64), ("valid", bool)):
            group.create_dataset(column, shape=(0,), maxshape=(None,), chunks=(ROW_CHUNK,), dtype=dtype,
                                 compression="gzip" if dtype is STR else None)
        group.create_dataset("n_rows", data=0, dtype=np.int64)
        group.attrs["has_captions"] = has_captions
        group.attrs["classes"] = ""
        return group

    def _set_classes(self, group: h5py.Group, split: str, classes: list[str]) -> None:
        current = group.attrs.get("classes", "")
        if current:
            if self.class_names(current) != classes:
                raise ProvenanceError(
                    f"split {split!r} was extracted with other class names ({current!r}); use another split name"
                )
            return
        self.put_classes(split, classes)
        group.attrs["classes"] = split

    def put_classes(self, name: str, classes: Sequence[str]) -> None:
        """Store (or replace) a class-name list under ``/classes/<name>``."""
        self._require_writer()
        parent = self._file["classes"]
        if h5_name(name) in parent:
            del parent[h5_name(name)]
        parent.create_dataset(h5_name(name), data=list(classes), dtype=STR)

    def ensure_encoder(self, encoder: str, info: dict[str, Any]) -> None:
        """Create an encoder's group with its provenance, or check it matches what is stored."""
        self._require_writer()
        name = h5_name(encoder)
        group = self._file["encoders"].get(name)
        if group is None:
            group = self._file["encoders"].create_group(name)
            group.attrs["key"] = encoder
            for k, v in info.items():
                group.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
            return
        for field in ("model", "weights", "embed_dim", "precision"):
            stored = group.attrs.get(field)
            if field in info and stored is not None and _plain(stored) != info[field]:
                fix = f"extract with --precision {_plain(stored)}" if field == "precision" else "use another encoder key"
                raise ProvenanceError(
                    f"encoder key {encoder!r} in {self.path} was made with {field}={_plain(stored)!r}, "
                    f"not {info[field]!r}; {fix}"
                )

    def prepare_features(self, encoder: str, split: str, dim: int, dtype: str = "float32",
                         views: int = 0) -> None:
        """Create or grow an encoder's image array (and views) to the split's committed rows."""
        self._require_writer()
        group = self._encoder_group(encoder)
        n = self.n_rows(split)
        name = h5_name(split)
        arrays = [("images", (dim,), "done")]
        if views:
            arrays.append(("views", (views, dim), "views_done"))
        for kind, tail, done_kind in arrays:
            path = f"{kind}/{name}"
            if path in group:
                ds = group[path]
                if ds.shape[1:] != tail:
                    raise ProvenanceError(
                        f"{kind} of split {split!r} for encoder {encoder!r} have shape (N, "
                        f"{', '.join(map(str, ds.shape[1:]))}); refusing to append (N, {', '.join(map(str, tail))})"
                    )
                ds.resize((n, *tail))
                group[f"{done_kind}/{name}"].resize((n,))
                continue
            chunk_rows = max(1, min(ROW_CHUNK, (1 << 20) // (int(np.prod(tail)) * np.dtype(dtype).itemsize)))
            group.create_dataset(path, shape=(n, *tail), maxshape=(None, *tail), dtype=dtype,
                                 chunks=(chunk_rows, *tail))
            group.create_dataset(f"{done_kind}/{name}", shape=(n,), maxshape=(None,), dtype=bool,
                                 chunks=(ROW_CHUNK,), fillvalue=False)
        self._file.flush()

    def pending_rows(self, encoder: str, split: str, rows: np.ndarray, views: int = 0) -> np.ndarray:
        """The subset of ``rows`` (sorted) that ``encoder`` has not committed yet."""
        group = self._encoder_group(encoder)
        name = h5_name(split)
        todo = ~group[f"done/{name}"][:][rows].astype(bool)
        if views:
            todo |= ~group[f"views_done/{name}"][:][rows].astype(bool)
        return np.sort(rows[todo])

    def begin_appending(self) -> None:
        """Switch to SWMR mode: from now on readers see each committed chunk as it lands."""
        if not self._file.swmr_mode:
            self._file.flush()
            self._file.swmr_mode = True

    def write_features(self, encoder: str, split: str, rows: np.ndarray, features: np.ndarray,
                       ok: np.ndarray, reasons: Sequence[str], views: np.ndarray | None = None) -> None:
        """Write one chunk of features for sorted ``rows`` and commit it.

        Order: features (and views) -> flush -> validity and error reasons -> flush -> done
        mask -> flush. Every column written before the mask is idempotent, so a crash at any
        point followed by a re-run yields each row exactly once.
        """
        if self.mode != "a":
            raise PermissionError(f"{self.path} is open read-only")
        group = self._encoder_group(encoder)
        name = h5_name(split)
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return
        if np.any(np.diff(rows) <= 0):
            raise ValueError("rows must be strictly increasing")
        images = group[f"images/{name}"]
        if features.shape[1:] != images.shape[1:]:
            raise ProvenanceError(
                f"features of dim {features.shape[1:]} do not fit encoder {encoder!r}'s array of dim {images.shape[1:]}"
            )
        _write_rows(images, rows, features)
        if views is not None:
            _write_rows(group[f"views/{name}"], rows, views)
        self._file.flush()
        split_group = self._split(split)
        ok = np.asarray(ok, dtype=bool)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            _write_rows(split_group["valid"], rows[bad], np.zeros(len(bad), dtype=bool))
            errors = split_group["errors"]
            for i in bad:
                errors[rows[i]] = reasons[i] or "unreadable image"
            self._file.flush()
        _write_rows(group[f"done/{name}"], rows, np.ones(len(rows), dtype=bool))
        if views is not None:
            _write_rows(group[f"views_done/{name}"], rows, np.ones(len(rows), dtype=bool))
        self._file.flush()

    def put_features(self, encoder: str, split: str, features: np.ndarray, info: dict[str, Any]) -> None:
        """Store a derived (N, D) feature array for all committed rows of ``split`` under a
        new encoder key with its provenance (e.g. embeddings with a prompt direction removed)."""
        n = self.n_rows(split)
        if features.shape[0] != n:
            raise ValueError(f"features have {features.shape[0]} rows but split {split!r} has {n}")
        self.ensure_encoder(encoder, {**info, "embed_dim": int(features.shape[1])})
        group = self._encoder_group(encoder)
        name = h5_name(split)
        for path in (f"images/{name}", f"done/{name}"):
            if path in group:
                del group[path]
        self.prepare_features(encoder, split, features.shape[1], str(features.dtype))
        rows = np.arange(n)
        self.write_features(encoder, split, rows, features, self._column(split, "valid").astype(bool),
                            [""] * n)

    def put_text_bank(self, encoder: str, bank: str, weights: np.ndarray, strings: Sequence[str],
                      kind: str = "list", **extra: np.ndarray | Sequence[str]) -> None:
        """Store (or replace) a text bank: (C|K, D) ``weights``, their ``strings`` and extras
        such as ``classes``, ``templates`` and ``per_template``."""
        self._require_writer()
        group = self._encoder_group(encoder)
        dim = _plain(group.attrs.get("embed_dim", weights.shape[-1]))
        if weights.shape[-1] != dim:
            raise ProvenanceError(f"text embeddings of dim {weights.shape[-1]} do not match encoder {encoder!r} (dim {dim})")
        texts = group.require_group("texts")
        name = h5_name(bank)
        if name in texts:
            del texts[name]
        bank_group = texts.create_group(name)
        bank_group.attrs["kind"] = kind
        bank_group.create_dataset("weights", data=np.asarray(weights, dtype=np.float32))
        bank_group.create_dataset("strings", data=list(strings), dtype=STR)
        for key, value in extra.items():
            if isinstance(value, np.ndarray) and value.dtype.kind != "U":
                bank_group.create_dataset(key, data=value)
            else:
                bank_group.create_dataset(key, data=[str(v) for v in value], dtype=STR)
        self._file.flush()

    def put_logits(self, name: str, split: str, logits: np.ndarray, kind: str = "logits") -> None:
        """Store (or replace) an external classifier's (N, C) logits or probabilities under
        ``/logits/<name>/<split>``, row-aligned with all committed rows of ``split``."""
        self._require_writer()
        if kind not in ("logits", "probabilities"):
            raise ValueError(f"kind must be 'logits' or 'probabilities', not {kind!r}")
        n = self.n_rows(split)
        logits = np.asarray(logits, dtype=np.float32)
        if logits.ndim != 2 or logits.shape[0] != n:
            raise ProvenanceError(f"logits of shape {logits.shape} do not fit split {split!r} ({n} rows)")
        group = self._file.require_group("logits").require_group(h5_name(name))
        if h5_name(split) in group:
            del group[h5_name(split)]
        ds = group.create_dataset(h5_name(split), data=logits)
        ds.attrs["kind"] = kind
        self._file.flush()

    def save_model(self, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Store (or replace) a fitted solver's arrays and JSON metadata under ``/models``."""
        self._require_writer()
        models = self._file["models"]
        key = h5_name(name)
        if key in models:
            del models[key]
        group = models.create_group(key)
        for array_name, value in arrays.items():
            group.create_dataset(array_name, data=np.asarray(value))
        group.attrs["meta"] = json.dumps(meta)
        self._file.flush()


def _write_rows(ds: h5py.Dataset, rows: np.ndarray, values: np.ndarray) -> None:
    """Write ``values`` at sorted ``rows``, one slice per contiguous run (h5py fancy writes are slow)."""
    if len(rows) == 0:
        return
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
        ds[rows[start]: rows[stop - 1] + 1] = values[start:stop]


def _plain(value: Any) -> Any:
    """HDF5 attribute values as plain Python scalars."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value

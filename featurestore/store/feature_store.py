"""The HDF5 feature store: one ``.h5`` file holding splits, encoders' features, text banks, models.

Layout and crash-safety rules are written down in docs/store-format.md. In short: every
array is row-aligned with ``/splits/<split>``; a row is data only once it is *committed*
(split rows below ``n_rows``; an encoder's rows where its ``done`` mask is set), and the commit
marker is written and flushed only after the data it covers, in SWMR order. A writer killed at
any moment therefore leaves a store whose committed part is intact, and a re-run redoes exactly
the uncommitted rows.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featurestore.errors import (
    FeatureStoreError,
    NotFoundError,
    ProvenanceError,
    StoreCreatingError,
    StoreDamagedError,
    StoreEmptyError,
    StoreFormatError,
)
from featurestore.store.disk_space import (
    abandon,
    check_room,
    forget_lost_write,
    is_no_space,
    lost_write,
    no_space_error,
    payload_bytes,
)
from featurestore.store.files import CHUNK_CACHE_BYTES, check_links_inside, looks_empty, open_reader
from featurestore.store.split_names import check_split_name
from featurestore.store.superblock import clear_consistency_flags
from featurestore.store.switch_journal import JournaledFile, roll_back
from featurestore.store.write_points import write_point
from featurestore.store.writer_lock import WriterLock, creating_writer, writer_active

# 2: append-only split columns (string columns uncompressed, so a committed chunk never moves),
# fletcher32 checksums on feature arrays, objects replaced through /.staging. Version-1 stores
# are read as they are; their compressed split columns are copied to the new layout (staged,
# then switched) the first time rows are appended.
FORMAT_VERSION = 2
STR = h5py.string_dtype("utf-8")
ROW_CHUNK = 4096
STAGING = ".staging"  # the staging group (".staging-<ns>" if a crash left the first unreadable)
SPLIT_COLUMNS = ("ids", "paths", "labels", "captions", "valid", "errors")
# Reads that fail a fletcher32 checksum are retried this often (a SWMR writer may be
# rewriting that chunk right now); a checksum that keeps failing is damage.
CHECKSUM_READ_ATTEMPTS = 4
# A reader waits this long (seconds) for a writer creating the store to commit its first rows.
CREATION_WAIT_ENV = "FEATURESTORE_CREATION_WAIT_SECONDS"
CREATION_WAIT_SECONDS = 5.0
_staging_serial = itertools.count()


def h5_name(key: str) -> str:
    """HDF5 object name for a user-facing key (keys like ``ViT-B-32/openai`` hold slashes)."""
    return key.replace("/", "|")


MAX_MODEL_NAME = 200
_MODEL_NAME_FORBIDDEN = "/\\|,"


def check_model_name(name: str) -> str:
    """``name`` if it can name a saved model; FeatureStoreError with a one-line reason otherwise.

    A name is non-empty, printable (no newline, tab or other control character), without
    leading or trailing spaces, does not start with "." or "-", holds none of ``/ \\ | ,``
    (an HDF5 path separator, the store's stand-in for "/", the separator of ``--models A,B``)
    and is at most ``MAX_MODEL_NAME`` characters long.
    """
    if not isinstance(name, str) or not name:
        raise FeatureStoreError("a model name cannot be empty")
    shown = repr(name[:60])
    if len(name) > MAX_MODEL_NAME:
        raise FeatureStoreError(f"model name {shown}... is {len(name)} characters; at most {MAX_MODEL_NAME}")
    bad = sorted({c for c in name if c in _MODEL_NAME_FORBIDDEN or not c.isprintable()})
    if bad:
        raise FeatureStoreError(f"model name {shown} holds {', '.join(map(repr, bad))}; a model name is one "
                                "printable word without / \\ | or ,")
    if name != name.strip() or name[0] in ".-":
        raise FeatureStoreError(f"model name {shown} starts or ends with a space or starts with '.' or '-'")
    return name


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
        self._journal: JournaledFile | None = None
        self._handles: dict[str, h5py.Dataset] = {}
        if mode == "r":
            if not self.path.exists():
                raise NotFoundError(f"no store at {self.path}")
            self._file = self._open_reader()
        else:
            self._lock = WriterLock(self.path)
            self._lock.acquire()
            try:
                check_room(self.path, 0)
                self._file = self._open_writer()
            except BaseException as exc:
                self._lock.release()
                if is_no_space(exc) and not getattr(exc, "before_writing", False):
                    raise no_space_error(self.path) from None
                raise
        try:
            self._check_format()
            check_links_inside(self._file, self.path)
            if mode == "a":
                self._idle()
        except BaseException as exc:
            # an open that fails closes the file and releases the writer lock: a writer that
            # stays alive (a Dask worker retrying its task) must not keep its own store locked
            no_space = mode == "a" and isinstance(exc, (OSError, RuntimeError)) and is_no_space(exc)
            if no_space:
                self._no_space = True
            with contextlib.suppress(Exception):
                self.close()
            if no_space:
                raise no_space_error(self.path) from None
            raise

    # ------------------------------------------------------------------ opening and closing
    def _open_reader(self) -> h5py.File:
        """Open for reading once no writer is creating the store (its note says so, or the file is
        still empty while a writer holds the lock): until its first rows and arrays are committed
        a new store is not there to read. Waits ``FEATURESTORE_CREATION_WAIT_SECONDS`` (default
        ``CREATION_WAIT_SECONDS``) at most, then StoreCreatingError in one line."""
        text = os.environ.get(CREATION_WAIT_ENV, "").strip()
        try:
            wait = float(text) if text else CREATION_WAIT_SECONDS
        except ValueError:
            wait = CREATION_WAIT_SECONDS
        deadline = time.monotonic() + wait
        while True:
            pid = creating_writer(self.path)
            if pid is None:
                try:
                    return open_reader(self.path)
                except StoreEmptyError:
                    if not writer_active(self.path):
                        raise
            if time.monotonic() >= deadline:
                raise StoreCreatingError(
                    f"{self.path} is being created by {f'pid {pid}' if pid else 'a writer'}: its first rows are not "
                    f"committed yet (waited {wait:g} s); try again when the writer has started extracting"
                )
            time.sleep(0.05)

    def _open_writer(self) -> h5py.File:
        # The lock created the file if there was none. An empty file, or a bare superblock
        # left by a writer killed before its first flush, is a store with nothing in it. A switch
        # a killed writer left unfinished is undone first (we hold the lock).
        roll_back(self.path)
        created = looks_empty(self.path)
        if created:
            if self._lock is not None:  # readers wait until begin_appending (or close)
                self._lock.mark_creating(True)
            write_point("create the store file")
            # fs_strategy="none": freed space is never reused, so raw data written before a
            # flush can never land where the last flushed metadata still points.
            f = h5py.File(self.path, "w", libver="latest", locking=False, fs_strategy="none")
            from featurestore import __version__

            write_point("write the new store's attributes and groups")
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["created_by"] = f"featurestore {__version__}"
            for group in ("splits", "classes", "encoders", "models"):
                f.create_group(group)
            try:
                write_point("flush the new store")
                f.flush()
            except BaseException as exc:
                if is_no_space(exc):
                    abandon(f)
                raise
            f.close()
        else:
            # We hold the writer lock, so a "still open for write" mark is a dead writer's.
            try:
                write_point("clear a dead writer's open-for-write mark")
                clear_consistency_flags(self.path)
            except ValueError as exc:
                raise StoreFormatError(f"{self.path} is not an HDF5 store ({exc})") from None
        try:
            f = h5py.File(self.path, "a", libver="latest", locking=False, rdcc_nbytes=CHUNK_CACHE_BYTES)
        except OSError as exc:
            raise StoreFormatError(f"{self.path} is not a writable HDF5 store ({exc}); "
                                   f"fs verify {self.path} checks it") from None
        if "format_version" not in f.attrs and len(f) == 0 and not created:
            # A root with nothing in it: the first writer was killed before its first commit.
            f.close()
            return self._recreate_empty()
        return f

    def _recreate_empty(self) -> h5py.File:
        write_point("truncate an empty store file")
        os.truncate(self.path, 0)
        return self._open_writer()

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
        """Flush and close the file, then release the writer lock. After a write that found no
        space the file is closed without writing to it again (:func:`abandon`)."""
        lost = self.mode == "a" and lost_write()
        if lost:  # a write of this store failed in an h5py destructor: close without writing, say so
            forget_lost_write()
            lost = not getattr(self, "_no_space", False)
            self._no_space = True
        if getattr(self, "_file", None) is not None and self._file.id.valid:
            if getattr(self, "_no_space", False):
                abandon(self._file)
            else:
                try:
                    self._file.close()
                except (OSError, RuntimeError) as exc:
                    if not is_no_space(exc):
                        raise
                    abandon(self._file)
                    self._no_space = True
                    self._release()
                    raise no_space_error(self.path) from None
        self._release()
        if lost:
            raise no_space_error(self.path)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> FeatureStore:
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
        """Leave SWMR mode so new objects can be created (SWMR forbids creating objects).

        Readers cannot open the file while it is out of SWMR mode (they wait, bounded), so
        every public write method returns to SWMR mode when it is done (:meth:`_idle`).
        """
        if self._file.swmr_mode:
            write_point("close to leave SWMR mode")
            self._file.close()
            self._file = h5py.File(self.path, "a", libver="latest", locking=False,
                                   rdcc_nbytes=CHUNK_CACHE_BYTES)

    def _idle(self) -> None:
        """Flush and (re-)enter SWMR mode, in which readers can open and read the store (inside a
        journaled switch: nothing, the switch's end does it)."""
        if self.mode == "a" and self._journal is None and self._file.id.valid and not self._file.swmr_mode:
            write_point("flush before SWMR mode")
            self._file.flush()
            self._file.swmr_mode = True

    # ------------------------------------------------------------------ atomic replacement
    def _staged_path(self) -> str:
        """A fresh name in the staging group for an object being written."""
        return f"{self._staging_group().name}/{os.getpid()}-{time.time_ns()}-{next(_staging_serial)}"

    def _staging_group(self) -> h5py.Group:
        """The group where objects are written before they are switched in (never listed).

        Objects a killed writer left there are never opened again (killed inside a flush, one
        may not even read back; their space stays unused). If a kill inside a flush left the
        group itself unreadable, a new ``/.staging-<ns>`` takes its place.
        """
        name = getattr(self, "_staging_name", None)
        if name is not None and name in self._file:
            return self._file[name]
        for candidate in sorted((n for n in self._file if n.startswith(STAGING)), reverse=True):
            try:
                len(self._file[candidate])
            except (OSError, RuntimeError, KeyError):
                continue
            self._staging_name = candidate
            return self._file[candidate]
        name = STAGING if STAGING not in self._file else f"{STAGING}-{time.time_ns()}"
        write_point("create the staging group")
        self._file.create_group(name)
        self._staging_name = name
        return self._file[name]

    def _switch_in(self, staged: str, target: str) -> None:
        """Make the fully written object at ``staged`` the object at ``target``.

        The new object is flushed before any link changes; the old one is moved aside and the
        new one moved in (both in HDF5's cache), one flush commits the switch, and only then is
        the old object unlinked. A kill at any point leaves ``target`` old or new, never mixed;
        a killed writer's staging group is left as it is (never listed, never opened).
        """
        write_point(f"flush staged {target}")
        self._file.flush()
        parent_path = target.rpartition("/")[0]
        if parent_path and parent_path not in self._file:
            write_point(f"create {parent_path}")
            self._file.require_group(parent_path)
        old = None
        if target in self._file:
            old = self._staged_path()
            write_point(f"move the old {target} aside")
            self._file.move(target, old)
        write_point(f"move the new {target} in")
        self._file.move(staged, target)
        write_point(f"flush the switch of {target}")
        self._file.flush()
        if old is not None:
            write_point(f"unlink the old {target}")
            del self._file[old]
            write_point(f"flush the unlink of the old {target}")
            self._file.flush()

    @contextlib.contextmanager
    def _journaled(self) -> Iterator[None]:
        """Run the body as one switch whose every write is journaled first (featurestore/store/
        switch_journal.py): the file is reopened through a :class:`JournaledFile`, the body
        writes its objects in place, one flush, and removing the journal commits. A kill at any
        write before that leaves a journal that the next opener rolls back (the store as it was
        before the body), an exception in the body rolls back at once. Nested calls join the
        outer switch. Leaves the writer out of SWMR mode (call :meth:`_idle` after)."""
        if self._journal is not None:
            yield
            return
        write_point("close to start a journaled switch")
        self._file.close()
        journal = None
        try:
            journal = JournaledFile(self.path)
            self._file = h5py.File(journal, "a", libver="latest", locking=False, rdcc_nbytes=CHUNK_CACHE_BYTES)
            self._journal = journal
            yield
            write_point("flush the journaled switch")
            self._file.flush()
            journal.commit()
        except BaseException:
            if journal is not None:
                abandon(self._file, journal)  # no write after a failed one (a full disk): rolled back below
                journal.close()
                roll_back(self.path)
            raise
        finally:
            self._journal = None
            if self._file.id.valid:
                self._file.close()
            if journal is not None:
                journal.close()
            self._file = h5py.File(self.path, "a", libver="latest", locking=False, rdcc_nbytes=CHUNK_CACHE_BYTES)

    def _remove(self, target: str) -> None:
        """Unlink ``target`` if it exists (inside :meth:`_journaled` only: the switch makes it atomic)."""
        if target in self._file:
            write_point(f"unlink the old {target}")
            del self._file[target]

    def _new_array(self, where: str, data: Any, dtype: Any = None) -> h5py.Dataset:
        """Create a dataset; numeric arrays get fletcher32 checksums (checked on every read)."""
        write_point(f"create {where}")
        if dtype is STR:
            return self._file.create_dataset(where, data=data, dtype=STR)
        array = np.asarray(data)
        if array.ndim >= 1 and array.size and array.dtype.kind in "biuf":
            return self._file.create_dataset(where, data=array, chunks=True, fletcher32=True)
        return self._file.create_dataset(where, data=array)

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
        checked = self.__dict__.setdefault("_shards_checked", set())
        if split not in checked and "ids" in group and group["ids"].is_virtual:
            # a --cluster split read without its shard files would read as all rows unreadable
            from featurestore.store.shard_consolidation import check_shard_files

            check_shard_files(self._file, split)
            checked.add(split)
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
            raise NotFoundError(
                f"no class list {name!r} in {self.path} (it has: {', '.join(self.class_sets()) or 'none'})")
        return list(ds.asstr()[:])

    def errors(self, split: str) -> list[dict[str, str]]:
        """Rows that failed to decode: id, path and reason, in row order."""
        try:
            reasons = self._column(split, "errors")
        except (OSError, RuntimeError):
            reasons = self._reasons_one_by_one(split)
        bad = np.flatnonzero(reasons != "")
        ids, paths = self._column(split, "ids"), self._column(split, "paths")
        return [{"id": ids[i], "path": paths[i], "reason": reasons[i]} for i in bad]

    def _reasons_one_by_one(self, split: str) -> np.ndarray:
        """The error reasons, reading the rows of a failing chunk one at a time: a writer killed
        in the middle of a flush can leave a reason of a row it had not committed pointing at
        a string that never reached the disk (its rerun writes the reason again)."""
        ds = self._get(f"{self._split(split).name}/errors")
        n = self.n_rows(split)
        out = np.empty(n, dtype=object)
        step = ds.chunks[0] if ds.chunks else n
        for start in range(0, n, max(1, step)):
            stop = min(n, start + step)
            try:
                out[start:stop] = ds.asstr()[start:stop]
                continue
            except (OSError, RuntimeError):
                pass
            for row in range(start, stop):
                try:
                    out[row] = ds.asstr()[row]
                except (OSError, RuntimeError):
                    out[row] = "unreadable image (reason lost: its writer was killed; run fs extract again)"
        return out

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
        ds = self._get(done_path)
        mask = np.zeros(0, dtype=bool) if ds is None else _checked_read(ds, slice(0, n)).astype(bool)
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
        whole = _checked_read(ds, slice(0, self.n_rows(split)))
        if rows.size == len(whole):  # every row: no selection copy (a 50,000-row test split is 200 MB)
            return np.ascontiguousarray(whole, dtype=dtype)
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
            block = _checked_read(ds, slice(start, stop))[chunk_rows_sel - start]
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
        X = np.asarray(_checked_read(self._get(data_path), slice(start, stop))[valid], dtype=dtype)
        return X, self._get(f"{group}/labels")[start:stop][valid]

    def features_at(self, encoder: str, split: str, rows: np.ndarray, valid_only: bool = True,
                    dtype: np.dtype | type = np.float32) -> np.ndarray:
        """The features of ``rows`` (positions as :meth:`features` numbers them), in their order,
        reading only the HDF5 chunks that hold one of them, runs of adjacent chunks as one read:
        a few-shot draw from a large pool costs its chunks, not the pool."""
        data_path, _ = self._image_paths(encoder, split)
        positions = self._complete_rows(encoder, split, valid_only)[np.asarray(rows, dtype=np.int64)]
        ds = self._get(data_path)
        out = np.empty((positions.size, *ds.shape[1:]), dtype=dtype)
        order = np.argsort(positions, kind="stable")
        wanted = positions[order]
        step = ds.chunks[0] if ds.chunks else max(1, ds.shape[0])
        row_bytes = ds.dtype.itemsize * int(np.prod(ds.shape[1:]))
        per_read = max(1, (16 << 20) // max(1, step * row_bytes))  # chunks per read: about 16 MB
        chunks = np.flatnonzero(np.bincount(wanted // step))  # the chunks holding a wanted row, ascending
        buffer = np.empty((min(per_read, chunks.size) * step, *ds.shape[1:]), dtype=ds.dtype)  # reused: no fresh pages
        for run in np.split(chunks, np.flatnonzero(np.diff(chunks) != 1) + 1):
            for part in range(0, run.size, per_read):
                lo, hi = int(run[part]) * step, min((int(run[min(part + per_read, run.size) - 1]) + 1) * step, len(ds))
                i, j = np.searchsorted(wanted, [lo, hi])
                block = _checked_read(ds, np.s_[lo:hi], buffer[:hi - lo])
                out[order[i:j]] = block[wanted[i:j] - lo]
        return out

    def read_features_into(self, encoder: str, split: str, start: int, out: np.ndarray) -> np.ndarray:
        """Stored rows ``start .. start + len(out)`` of a split's features (every row, valid or
        not: the positions ``np.flatnonzero(valid(split))`` index) read straight into ``out``
        ((k, D) C-contiguous float32): a split scored block by block reuses one buffer."""
        data_path, _ = self._image_paths(encoder, split)
        stop, n = start + len(out), self.n_rows(split)
        if start < 0 or stop > n:
            raise IndexError(f"rows {start}..{stop} are outside split {split!r} ({n} rows)")
        return _checked_read(self._get(data_path), np.s_[start:stop], out)

    def norms(self, encoder: str, split: str, valid_only: bool = True) -> np.ndarray:
        """The (N,) L2 norms of the raw embeddings, row-aligned with :meth:`features`: stored
        features are unit rows, ``features * norms[:, None]`` are the encoder's raw outputs."""
        group = self._encoder_group(encoder)
        name = h5_name(split)
        rows = self._complete_rows(encoder, split, valid_only)
        if f"norms/{name}" not in group:
            raise NotFoundError(f"encoder {encoder!r} has no recorded feature norms for split {split!r} "
                                "(a derived array, or extracted before norms were recorded)")
        values = self._get(f"{group.name}/norms/{name}")[: self.n_rows(split)][rows]
        if np.isnan(values).any():
            raise NotFoundError(f"{int(np.isnan(values).sum())} rows of split {split!r} were extracted by "
                                f"{encoder!r} before norms were recorded; their raw features are not recoverable")
        return np.asarray(values, dtype=np.float32)

    def views(self, encoder: str, split: str, valid_only: bool = True) -> np.ndarray:
        """The (N, V, D) augmented views stored by ``fs extract --views V``."""
        group = self._encoder_group(encoder)
        name = h5_name(split)
        if f"views/{name}" not in group:
            raise NotFoundError(
                f"encoder {encoder!r} has no augmented views for split {split!r}; extract with --views N")
        n = self.n_rows(split)
        done = self._get(f"{group.name}/views_done/{name}")[:n].astype(bool)
        if len(done) < n or not done.all():
            raise NotFoundError(f"augmented views of split {split!r} are incomplete; run fs extract --views again")
        data = _checked_read(self._get(f"{group.name}/views/{name}"), slice(0, n))
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
                f"no text bank {bank!r} for encoder {encoder!r} "
                f"(it has: {', '.join(self.text_banks(encoder)) or 'none'}); run fs text"
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
                f"no text bank {bank!r} for encoder {encoder!r} "
                f"(it has: {', '.join(self.text_banks(encoder)) or 'none'}); run fs text"
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
            raise NotFoundError(
                f"no imported logits {name!r} in {self.path} (it has: {', '.join(self.logits_names()) or 'none'})")
        ds = group.get(h5_name(split))
        if ds is None:
            raise NotFoundError(f"imported logits {name!r} have no split {split!r} "
                                f"(they have: {', '.join(sorted(_key(n) for n in group))})")
        n = self.n_rows(split)
        if ds.shape[0] != n:
            raise NotFoundError(f"imported logits {name!r} cover {ds.shape[0]} rows but split {split!r} now has {n}; "
                                "import them again")
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
        flushed. Committed rows are never rewritten: the columns are append-only (uncompressed
        chunks do not move when rows are added after them). Duplicate ids within ``ids`` are
        refused.
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
            group = self._append_only_columns(split)
            if captions is not None and not group.attrs.get("has_captions", False):
                write_point(f"mark split {split} as captioned")
                group.attrs["has_captions"] = True
            columns = {
                "ids": [ids[i] for i in new],
                "paths": [str(paths[i]) for i in new],
                "labels": np.asarray([labels[i] for i in new], dtype=np.int64),
                "captions": [(captions[i] or "") if captions is not None else "" for i in new],
                "valid": np.ones(len(new), dtype=bool),
                "errors": [""] * len(new),
            }
            # Every column stays open until the flush: closing a dataset writes its cached
            # chunks at once, and a chunk of string references on disk before the heap holding
            # the strings is a "bad heap index" for whoever reads or overwrites those rows.
            handles = []
            for name, values in columns.items():
                ds = group[name]
                handles.append(ds)
                _zero_string_tail(ds, n)
                write_point(f"resize split column {name}")
                ds.resize((n + len(new),))
                write_point(f"write new rows of split column {name}")
                ds[n:] = values
            write_point("flush new split rows")
            self._file.flush()
            del handles
            write_point("commit new split rows (n_rows)")
            group["n_rows"][()] = n + len(new)
            write_point("flush the row commit")
            self._file.flush()
        if source and group.attrs.get("source", "") != source:
            write_point("write split source")
            group.attrs["source"] = source
        self._idle()
        return rows

    def _append_only_columns(self, split: str) -> h5py.Group:
        """Copy a version-1 split's compressed string columns to the append-only layout.

        A compressed chunk changes size when rows are added to it, so HDF5 moves it and frees
        the old space; a kill before the next flush left committed ids unreadable. Each copy is
        written under /.staging and switched in whole (same values, so readers see no change).
        """
        group = self._split(split)
        n = int(group["n_rows"][()])
        for column in SPLIT_COLUMNS:
            ds = group[column]
            if ds.compression is None:
                continue
            staged = self._staged_path()
            self._staging_group()
            write_point(f"create the append-only copy of split column {column}")
            copy = self._file.create_dataset(staged, shape=(n,), maxshape=(None,), chunks=(ROW_CHUNK,),
                                             dtype=ds.dtype)
            for start in range(0, n, 65536):
                write_point(f"copy split column {column}")
                copy[start:min(n, start + 65536)] = ds[start:min(n, start + 65536)]
            self._switch_in(staged, f"{group.name}/{column}")
        return self._split(split)

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
            for column in SPLIT_COLUMNS:
                # Rows past the commit marker are a dead writer's: cut them off (HDF5 refills
                # the cut part of the last chunk), because writing over them would free their
                # string heap objects, which the dead writer never flushed ("bad heap index").
                # The committed part of that chunk is rewritten with the same bytes in place.
                if group[column].shape[0] > n:
                    write_point(f"cut a dead writer's rows off split column {column}")
                    group[column].resize((n,))
            return group
        write_point(f"create split {split}")
        group = splits.create_group(name)
        for column, dtype in (("ids", STR), ("paths", STR), ("captions", STR), ("errors", STR),
                              ("labels", np.int64), ("valid", bool)):
            # No compression: a chunk of fixed size keeps its place when rows are appended.
            # Numeric columns carry checksums (HDF5 keeps strings in heaps it cannot checksum).
            group.create_dataset(column, shape=(0,), maxshape=(None,), chunks=(ROW_CHUNK,), dtype=dtype,
                                 fletcher32=dtype is not STR)
        group.create_dataset("n_rows", data=0, dtype=np.int64)
        group.attrs["has_captions"] = has_captions
        group.attrs["classes"] = ""
        return group

    def _set_classes(self, group: h5py.Group, split: str, classes: list[str]) -> None:
        current = group.attrs.get("classes", "")
        if current:
            stored = self.class_names(current)
            if stored != classes:
                new = [c for c in classes if c not in stored]
                gone = [c for c in stored if c not in classes]
                what = (f"new class(es) {', '.join(map(repr, new[:5]))}" if new
                        else f"class(es) {', '.join(map(repr, gone[:5]))} missing" if gone
                        else "the classes in another order")
                raise ProvenanceError(
                    f"split {split!r} has {what} beside its stored class list; extract them into another split"
                )
            return
        self._put_classes(split, classes)
        write_point(f"name the class list of split {split}")
        group.attrs["classes"] = split

    def put_classes(self, name: str, classes: Sequence[str]) -> None:
        """Store (or replace) a class-name list under ``/classes/<name>`` (atomically)."""
        self._put_classes(name, classes)
        self._idle()

    def _put_classes(self, name: str, classes: Sequence[str]) -> None:
        self._require_writer()
        self._staging_group()
        staged = self._staged_path()
        self._new_array(staged, list(classes), dtype=STR)
        self._switch_in(staged, f"/classes/{h5_name(name)}")

    def ensure_encoder(self, encoder: str, info: dict[str, Any]) -> None:
        """Create an encoder's group with its provenance, or check it matches what is stored."""
        self._require_writer()
        name = h5_name(encoder)
        group = self._file["encoders"].get(name)
        if group is None:
            # One journaled switch: the group never exists without its provenance, and a kill
            # cannot tear /encoders (the list of every encoder).
            with self._journaled():
                write_point(f"create encoder {encoder}")
                group = self._file.create_group(f"/encoders/{name}")
                write_point(f"write the provenance of encoder {encoder}")
                group.attrs["key"] = encoder
                for k, v in info.items():
                    group.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
            self._idle()
            return
        for field in ("model", "weights", "embed_dim", "precision"):
            stored = group.attrs.get(field)
            if field in info and stored is not None and _plain(stored) != info[field]:
                fix = (f"extract with --precision {_plain(stored)}" if field == "precision"
                       else "use another encoder key")
                raise ProvenanceError(
                    f"encoder key {encoder!r} in {self.path} was made with {field}={_plain(stored)!r}, "
                    f"not {info[field]!r}; {fix}"
                )
        # The whole architecture config and preprocessing object, not only the weights: the same
        # checkpoint under another config or preprocessing gives other features.
        for field, what in (("model_cfg", "model config"), ("preprocess", "preprocessing")):
            stored = group.attrs.get(field)
            if field in info and stored is not None and _json_value(stored) != _json_value(info[field]):
                raise ProvenanceError(
                    f"encoder key {encoder!r} in {self.path} was made with another {what} "
                    f"({_json_diff(_json_value(stored), _json_value(info[field]))}); "
                    "refusing to mix its features: extract into another store"
                )

    def prepare_features(self, encoder: str, split: str, dim: int, dtype: str = "float32",
                         views: int = 0, seed: int | None = None, norms: bool = False) -> None:
        """Create or grow an encoder's image array (and views) to the split's committed rows.

        Feature arrays carry fletcher32 checksums, verified by HDF5 on every read. The views'
        random ``seed`` is recorded; resuming or extending views with another seed is refused
        (the views of one split would come from two augmentation streams). ``norms`` also
        creates the (N,) float32 per-row norms of the raw embeddings (NaN = not recorded).
        """
        self._require_writer()
        group = self._encoder_group(encoder)
        n = self.n_rows(split)
        name = h5_name(split)
        arrays: list[tuple[str, tuple[int, ...], str]] = [("images", (dim,), "done")]
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
                stored_seed = ds.attrs.get("seed")
                if kind == "views" and seed is not None and stored_seed is not None and int(stored_seed) != seed:
                    raise ProvenanceError(
                        f"the augmented views of split {split!r} for encoder {encoder!r} were made with "
                        f"--seed {int(stored_seed)}; resume with --seed {int(stored_seed)} or use another split name"
                    )
                if ds.shape[0] != n:
                    write_point(f"grow {kind} of {split}")
                    ds.resize((n, *tail))
                if group[f"{done_kind}/{name}"].shape[0] != n:
                    write_point(f"grow {done_kind} of {split}")
                    group[f"{done_kind}/{name}"].resize((n,))
                continue
            chunk_rows = max(1, min(ROW_CHUNK, (1 << 20) // (int(np.prod(tail)) * np.dtype(dtype).itemsize)))
            write_point(f"create {kind} of {split}")
            ds = group.create_dataset(path, shape=(n, *tail), maxshape=(None, *tail), dtype=dtype,
                                      chunks=(chunk_rows, *tail), fletcher32=True)
            if kind == "views" and seed is not None:
                ds.attrs["seed"] = seed
            write_point(f"create {done_kind} of {split}")
            group.create_dataset(f"{done_kind}/{name}", shape=(n,), maxshape=(None,), dtype=bool,
                                 chunks=(ROW_CHUNK,), fillvalue=False)
        if norms and f"norms/{name}" not in group:
            write_point(f"create norms of {split}")
            group.create_dataset(f"norms/{name}", shape=(n,), maxshape=(None,), dtype=np.float32,
                                 chunks=(ROW_CHUNK,), fillvalue=np.nan, fletcher32=True)
        elif f"norms/{name}" in group and group[f"norms/{name}"].shape[0] != n:
            write_point(f"grow norms of {split}")
            group[f"norms/{name}"].resize((n,))
        write_point("flush prepared arrays")
        self._file.flush()
        self._idle()

    def pending_rows(self, encoder: str, split: str, rows: np.ndarray, views: int = 0) -> np.ndarray:
        """The subset of ``rows`` (sorted) that ``encoder`` has not committed yet."""
        group = self._encoder_group(encoder)
        name = h5_name(split)
        todo = ~self._done_mask(group, f"done/{name}", self.n_rows(split))[rows]
        if views:
            todo |= ~self._done_mask(group, f"views_done/{name}", self.n_rows(split))[rows]
        return np.sort(rows[todo])

    @staticmethod
    def _done_mask(group: h5py.Group, path: str, n: int) -> np.ndarray:
        """A done mask padded to ``n`` rows (a missing mask: nothing done)."""
        ds = group.get(path)
        mask = np.zeros(n, dtype=bool) if ds is None else ds[:n].astype(bool)
        return np.pad(mask, (0, n - len(mask)))

    def begin_appending(self) -> None:
        """Switch to SWMR mode: from now on readers see each committed chunk as it lands.

        (Writers are in SWMR mode whenever no write method is running; kept for callers.) A new
        store's creation ends here: readers stop waiting for it.
        """
        self._idle()
        if self._lock is not None:
            self._lock.mark_creating(False)

    def write_features(self, encoder: str, split: str, rows: np.ndarray, features: np.ndarray,
                       ok: np.ndarray, reasons: Sequence[str], views: np.ndarray | None = None,
                       norms: np.ndarray | None = None) -> None:
        """Write one chunk of features for sorted ``rows`` and commit it (``norms``: the rows'
        raw embedding norms, written with the features, before the commit).

        Order: features (and views) -> flush -> validity and error reasons -> flush -> done
        mask -> flush. Every column written before the mask is idempotent, so a crash at any
        point followed by a re-run yields each row exactly once. Validity and reasons are the
        split's (the image decoded or not); derived arrays (:meth:`put_features`) never touch them.
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
        # Every array stays open until the flush: closing a dataset writes its cached chunks at once,
        # where a failure (a full disk) is only printed by h5py's destructor, not raised.
        handles = [images]
        _write_rows(images, rows, features, f"features of {split}")
        if views is not None:
            handles.append(group[f"views/{name}"])
            _write_rows(handles[-1], rows, views, f"views of {split}")
        if norms is not None:
            handles.append(group[f"norms/{name}"])
            _write_rows(handles[-1], rows, np.asarray(norms, dtype=np.float32), f"norms of {split}")
        write_point("flush features")
        self._file.flush()
        del handles
        split_group = self._split(split)
        ok = np.asarray(ok, dtype=bool)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            _write_rows(split_group["valid"], rows[bad], np.zeros(len(bad), dtype=bool), "validity")
            errors = split_group["errors"]
            for i in bad:
                write_point("write an error reason")
                _write_string(errors, int(rows[i]), reasons[int(i)] or "unreadable image")
            write_point("flush validity and error reasons")
            self._file.flush()
        _write_rows(group[f"done/{name}"], rows, np.ones(len(rows), dtype=bool), "done mask")
        if views is not None:
            _write_rows(group[f"views_done/{name}"], rows, np.ones(len(rows), dtype=bool), "views done mask")
        write_point("flush the done mask (commit)")
        self._file.flush()

    def put_features(self, encoder: str, split: str, features: np.ndarray, info: dict[str, Any]) -> None:
        """Store a derived (N, D) feature array for all committed rows of ``split`` under a
        new encoder key with its provenance (e.g. embeddings with a prompt direction removed).

        The encoder's group (when new), the array and its done mask are written in one journaled
        switch, so a reader sees the previous array or the new one and nothing else changes. The
        split's validity and error reasons are not touched (they describe the images, not this
        encoder).
        """
        n = self.n_rows(split)
        if features.shape[0] != n:
            raise ValueError(f"features have {features.shape[0]} rows but split {split!r} has {n}")
        if self.mode != "a":
            raise PermissionError(f"{self.path} is open read-only; open it with mode='a' to write")
        # One journaled switch: the encoder's group (when new), the array and its done mask are
        # all old or all new after a kill, and nothing else in the store changes.
        with self._journaled():
            self.ensure_encoder(encoder, {**info, "embed_dim": int(features.shape[1])})
            group = self._encoder_group(encoder)
            name = h5_name(split)
            dim = int(features.shape[1])
            images_path, done_path = f"{group.name}/images/{name}", f"{group.name}/done/{name}"
            self._remove(images_path)
            self._remove(done_path)
            chunk_rows = max(1, min(ROW_CHUNK, (1 << 20) // (dim * np.dtype(features.dtype).itemsize)))
            write_point(f"create derived features of {split}")
            images = self._file.create_dataset(images_path, shape=(n, dim), maxshape=(None, dim),
                                               dtype=features.dtype, chunks=(chunk_rows, dim), fletcher32=True)
            for start in range(0, n, 65536):
                write_point(f"write derived features of {split}")
                images[start:start + 65536] = features[start:start + 65536]
            write_point(f"create derived done mask of {split}")
            self._file.create_dataset(done_path, data=np.ones(n, dtype=bool), maxshape=(None,),
                                      chunks=(ROW_CHUNK,), fillvalue=False)
        self._idle()

    def put_text_bank(self, encoder: str, bank: str, weights: np.ndarray, strings: Sequence[str],
                      kind: str = "list", **extra: np.ndarray | Sequence[str]) -> None:
        """Store (or replace) a text bank: (C|K, D) ``weights``, their ``strings`` and extras
        such as ``classes``, ``templates`` and ``per_template``. One journaled switch: after a kill
        the bank is old or new and nothing else changed."""
        if self.mode != "a":
            raise PermissionError(f"{self.path} is open read-only; open it with mode='a' to write")
        group = self._encoder_group(encoder)
        dim = _plain(group.attrs.get("embed_dim", weights.shape[-1]))
        if weights.shape[-1] != dim:
            raise ProvenanceError(
                f"text embeddings of dim {weights.shape[-1]} do not match encoder {encoder!r} (dim {dim})")
        with self._journaled():
            target = f"{self._encoder_group(encoder).name}/texts/{h5_name(bank)}"
            self._remove(target)
            write_point(f"create text bank {bank}")
            bank_group = self._file.create_group(target)
            bank_group.attrs["kind"] = kind
            self._new_array(f"{target}/weights", np.asarray(weights, dtype=np.float32))
            self._new_array(f"{target}/strings", list(strings), dtype=STR)
            for key, value in extra.items():
                if isinstance(value, np.ndarray) and value.dtype.kind != "U":
                    self._new_array(f"{target}/{key}", value)
                else:
                    self._new_array(f"{target}/{key}", [str(v) for v in value], dtype=STR)
        self._idle()

    def put_logits(self, name: str, split: str, logits: np.ndarray, kind: str = "logits") -> None:
        """Store (or replace) an external classifier's (N, C) logits or probabilities under
        ``/logits/<name>/<split>``, row-aligned with all committed rows of ``split`` (one
        journaled switch)."""
        if self.mode != "a":
            raise PermissionError(f"{self.path} is open read-only; open it with mode='a' to write")
        if kind not in ("logits", "probabilities"):
            raise ValueError(f"kind must be 'logits' or 'probabilities', not {kind!r}")
        n = self.n_rows(split)
        logits = np.asarray(logits, dtype=np.float32)
        if logits.ndim != 2 or logits.shape[0] != n:
            raise ProvenanceError(f"logits of shape {logits.shape} do not fit split {split!r} ({n} rows)")
        with self._journaled():
            target = f"/logits/{h5_name(name)}/{h5_name(split)}"
            self._remove(target)
            ds = self._new_array(target, logits)
            write_point(f"write the kind of {target}")
            ds.attrs["kind"] = kind
        self._idle()

    def save_model(self, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Store (or replace) a fitted solver's arrays and JSON metadata under ``/models``.

        ``name`` must pass :func:`check_model_name` (FeatureStoreError otherwise)."""
        self.save_models({name: (arrays, meta)})

    def save_models(self, models: Mapping[str, tuple[dict[str, np.ndarray], dict[str, Any]]],
                    remove: Sequence[str] = ()) -> None:
        """Store (or replace) several models, and delete the saved models named in ``remove``, in
        one journaled switch: after a kill at any write, all of them are old or all new (a seed
        group of ``fs solve --seeds ... --save NAME`` is saved this way) and nothing else changed.

        Each name must pass :func:`check_model_name` (FeatureStoreError otherwise)."""
        for name in models:
            check_model_name(name)
        if self.mode != "a":
            raise PermissionError(f"{self.path} is open read-only; open it with mode='a' to write")
        with self._journaled():
            for name in remove:
                self._remove(f"/models/{h5_name(name)}")
            for name, (arrays, meta) in models.items():
                target = f"/models/{h5_name(name)}"
                self._remove(target)
                write_point(f"create model {name}")
                group = self._file.create_group(target)
                for array_name, value in arrays.items():
                    self._new_array(f"{target}/{array_name}", np.asarray(value))
                write_point(f"write the metadata of model {name}")
                group.attrs["meta"] = json.dumps(meta)
        self._idle()

def _write_rows(ds: h5py.Dataset, rows: np.ndarray, values: np.ndarray, what: str = "rows") -> None:
    """Write ``values`` at sorted ``rows``, one slice per contiguous run (h5py fancy writes are slow)."""
    if len(rows) == 0:
        return
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
        write_point(f"write {what}")
        ds[rows[start]: rows[stop - 1] + 1] = values[start:stop]


def _zero_string_tail(ds: h5py.Dataset, n: int) -> None:
    """Reset the string references past row ``n`` in the chunk holding row ``n``.

    A writer killed in the middle of a flush can leave that chunk on disk with references to
    strings in a heap block that never reached the disk; HDF5 frees the old string of every
    element it overwrites, so the next append would fail on them ("bad heap index", "len not
    positive after adjustment for EOA"). Zero bytes are HDF5's empty reference. The committed
    rows of the chunk are written back unchanged, in place (the chunk is uncompressed).
    """
    if ds.dtype.kind != "O" or ds.chunks is None or ds.compression is not None:
        return
    rows = ds.chunks[0]
    start = (n // rows) * rows
    if n == start and ds.shape[0] <= n:
        return  # the chunk of row n holds no committed row; fresh chunks are written whole
    try:
        info = ds.id.get_chunk_info_by_coord((start,))
    except (OSError, ValueError, RuntimeError):
        return
    if info.byte_offset is None or info.size == 0:
        return
    mask, raw = ds.id.read_direct_chunk((start,))
    keep = (n - start) * (len(raw) // rows)
    if any(raw[keep:]):
        write_point(f"reset a dead writer's string references in {ds.name}")
        ds.id.write_direct_chunk((start,), raw[:keep] + bytes(len(raw) - keep), mask)


def _write_string(ds: h5py.Dataset, row: int, value: str) -> None:
    """``ds[row] = value``; a reference a killed writer left dangling there is reset first."""
    try:
        ds[row] = value
    except (OSError, RuntimeError):
        rows = ds.chunks[0]
        start = (row // rows) * rows
        mask, raw = ds.id.read_direct_chunk((start,))
        size = len(raw) // rows
        at = (row - start) * size
        write_point(f"reset a dangling string reference in {ds.name}")
        ds.id.write_direct_chunk((start,), raw[:at] + bytes(size) + raw[at + size:], mask)
        ds[row] = value


def _checked_read(ds: h5py.Dataset, selection: Any, out: np.ndarray | None = None) -> np.ndarray:
    """``ds[selection]`` (read into ``out`` when given), retrying a failed checksum a few times (a
    SWMR writer may be rewriting that chunk as we read it); a checksum that keeps failing raises
    StoreDamagedError."""
    for attempt in range(CHECKSUM_READ_ATTEMPTS):
        try:
            if out is not None:
                ds.read_direct(out, selection)
                return out
            return ds[selection]
        except OSError as exc:
            if attempt == CHECKSUM_READ_ATTEMPTS - 1:
                raise StoreDamagedError(
                    f"{ds.file.filename}: {ds.name} fails its checksum or cannot be read ({_first_line(exc)}); "
                    f"the store is damaged (fs verify {ds.file.filename} lists what is readable)"
                ) from None
            time.sleep(0.05 * (attempt + 1))
            if ds.file.swmr_mode and ds.file.mode == "r":
                ds.refresh()
    raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# Public methods that write: each first checks that the disk has room for it (disk_space.check_room).
WRITE_METHODS = frozenset({"add_rows", "put_classes", "ensure_encoder", "prepare_features", "write_features",
                           "put_features", "put_text_bank", "put_logits", "save_model", "save_models"})


def _damage_is_one_line(method: Any) -> Any:
    """Turn HDF5's errors on a damaged file (OSError/RuntimeError from h5py) into one line; a
    write that found the disk full becomes NoSpaceError, and the store is then closed without
    writing to it again."""
    writes = method.__name__ in WRITE_METHODS

    @functools.wraps(method)
    def wrapper(self: FeatureStore, *args: Any, **kwargs: Any) -> Any:
        if writes and self.mode == "a":
            check_room(self.path, payload_bytes((args, kwargs)))
        try:
            return method(self, *args, **kwargs)
        except BaseException as exc:
            if self.mode == "a" and is_no_space(exc):
                if getattr(exc, "before_writing", False):
                    raise
                self._no_space = True
                raise no_space_error(self.path) from None
            if isinstance(exc, (PermissionError, FeatureStoreError)):
                raise
            if isinstance(exc, KeyError) and "Unable to" in str(exc):  # h5py's words for an HDF5 failure
                raise StoreDamagedError(
                    f"{self.path} is damaged or unreadable ({_first_line(exc).strip(chr(39))}); "
                    f"fs verify {self.path} checks it"
                ) from None
            if isinstance(exc, (OSError, RuntimeError)) and not isinstance(exc, KeyError):
                raise StoreDamagedError(
                    f"{self.path} is damaged or unreadable ({_first_line(exc)}); fs verify {self.path} checks it"
                ) from None
            raise
    return wrapper


for _name, _method in list(vars(FeatureStore).items()):
    if not _name.startswith("_") and callable(_method) and _name not in ("close",):
        setattr(FeatureStore, _name, _damage_is_one_line(_method))


def _json_value(value: Any) -> Any:
    """A recorded attribute (JSON text) or a Python value, as plain JSON data for comparison."""
    value = _plain(value)
    if isinstance(value, str) and value[:1] in "{[":
        return json.loads(value)
    return json.loads(json.dumps(value))


def _json_diff(stored: Any, new: Any) -> str:
    """The first differing entry of two recorded dicts, for a one-line refusal."""
    if isinstance(stored, dict) and isinstance(new, dict):
        for key in sorted(set(stored) | set(new)):
            if stored.get(key) != new.get(key):
                return f"{key}: {json.dumps(stored.get(key))} stored, {json.dumps(new.get(key))} now"
    return f"{json.dumps(stored)[:120]} stored, {json.dumps(new)[:120]} now"


def _plain(value: Any) -> Any:
    """HDF5 attribute values as plain Python scalars."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value

"""`fs verify`: read a whole store and report every part that is damaged.

Checks, in order: the file is not empty or truncated (size against the superblock's
end-of-file address), the "open for write" mark (a killed writer's, cleared with ``repair``),
the file opens, every dataset reads in full (HDF5 verifies the fletcher32 checksums of feature
arrays and saved arrays on each read; metadata checksums are verified for every object), the
sources of virtual (sharded) datasets exist and carry no killed writer's "open for write" mark
(cleared with ``repair``; checked before any read), each split's columns and done masks cover its
committed rows (each split's ``n_rows`` is checked first, and only committed rows are read, so
a crafted shape is never read whole), labels are integer class indices, the JSON attributes
readers parse (encoder provenance, saved models' metadata) parse; unfinished objects of
killed writers (staging) are noted, not read.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from featurestore.errors import FeatureStoreError, StoreFormatError
from featurestore.store.feature_store import SPLIT_COLUMNS, STAGING, FeatureStore
from featurestore.store.files import looks_empty
from featurestore.store.shard_consolidation import marked_shard_files
from featurestore.store.superblock import clear_consistency_flags, consistency_flags, superblock_eof
from featurestore.store.switch_journal import roll_back
from featurestore.store.writer_lock import hold_if_free

READ_ROWS = 65536


@dataclass
class VerifyReport:
    """What `fs verify` found: problems (the store is damaged) and notes (it is fine)."""

    path: str
    datasets: int = 0
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def verify_store(path: str | os.PathLike, repair: bool = False) -> VerifyReport:
    """Check the whole store at ``path``; ``repair`` clears a killed writer's mark."""
    path = Path(path)
    report = VerifyReport(str(path))
    if not path.is_file():
        report.problems.append("no such file")
        return report
    if looks_empty(path):
        report.problems.append("empty store: its first writer stopped before committing anything "
                               "(any writing command starts it again)")
        return report
    with hold_if_free(path) as no_writer:
        if not no_writer:
            report.notes.append("a writer holds the store right now; rows it is writing may be missing")
        elif _rolled_back(path, report):
            report.notes.append("rolled back a switch (model, text bank or logits) a killed writer left unfinished")
        try:
            eof = superblock_eof(path)
            flags = consistency_flags(path)
        except (ValueError, OSError) as exc:
            report.problems.append(f"not an HDF5 file ({_first_line(exc)})")
            return report
        if no_writer and eof is not None and path.stat().st_size < eof:
            report.problems.append(f"truncated: {path.stat().st_size} of {eof} bytes")
            return report
        if no_writer and flags:
            if repair:
                clear_consistency_flags(path)
                report.notes.append("cleared the open-for-write mark a killed writer left")
            else:
                report.notes.append("marked open for write by a killed writer (readers clear it; so does "
                                    f"fs verify --repair {path})")
    try:
        store = FeatureStore(path)
    except FeatureStoreError as exc:
        report.problems.append(str(exc))
        return report
    except (ValueError, TypeError, OSError, RuntimeError, KeyError) as exc:  # a crafted format_version, say
        report.problems.append(f"cannot be opened as a store: {_format_version_problem(path) or _first_line(exc)}")
        return report
    with store:
        _check_shard_marks(store, report, repair)  # before any read: HDF5 refuses to read a marked shard
        rows = _committed_rows(store, report)  # before any read: a crafted shape must not be read whole
        _read_everything(store.file, report, rows)
        _check_splits(store, report, rows)
        _check_metadata(store, report)
        left = 0
        for name in (n for n in store.file if n.startswith(STAGING)):
            try:
                left += len(store.file[name])
            except (OSError, RuntimeError, KeyError):
                report.notes.append(f"/{name} was left unreadable by a writer killed inside a flush (a new "
                                    "staging group replaces it; never read)")
        if left:
            report.notes.append(f"{left} unfinished object(s) of killed writers under /{STAGING}*, never read "
                                "(h5repack drops them)")
    from featurestore.index.files import index_file_problems  # the index files beside the store

    problems, notes = index_file_problems(path)
    report.problems += problems
    report.notes += notes
    return report


def _rolled_back(path: Path, report: VerifyReport) -> bool:
    """Undo a killed writer's unfinished switch, as readers and writers do (a problem if it cannot be)."""
    try:
        return roll_back(path)
    except (FeatureStoreError, OSError) as exc:
        report.problems.append(f"a killed writer's unfinished switch cannot be rolled back: {_first_line(exc)}")
        return False


def _check_shard_marks(store: FeatureStore, report: VerifyReport, repair: bool) -> None:
    """Shard files (``fs extract --cluster``) a killed writer left marked open for write: ``repair``
    clears the mark under the shard's own writer lock, as for the store file; otherwise a problem."""
    try:
        marked = marked_shard_files(store.file)
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        report.problems.append(f"the shard files of --cluster splits cannot be listed ({_first_line(exc)})")
        return
    for shard in marked:
        if not repair:
            report.problems.append(f"shard file {shard} is marked open for write by a killed writer, so its rows "
                                   f"cannot be read (fs verify --repair --store {store.path} clears it)")
            continue
        with hold_if_free(shard) as no_writer:
            if not no_writer:
                report.notes.append(f"shard file {shard} is held by a writer right now; its mark was left alone")
                continue
            try:
                clear_consistency_flags(shard)
            except (ValueError, OSError) as exc:
                report.problems.append(f"shard file {shard}: its open-for-write mark cannot be cleared "
                                       f"({_first_line(exc)})")
                continue
            report.notes.append(f"cleared the open-for-write mark a killed writer left on shard file {shard}")


def _format_version_problem(path: Path) -> str | None:
    """Why the root's ``format_version`` attribute is not a store format number, if it is not."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            version = f.attrs.get("format_version")
    except (OSError, RuntimeError, ValueError, TypeError, KeyError):
        return None
    if version is None:
        return None
    if np.ndim(version) != 0 or not np.issubdtype(np.asarray(version).dtype, np.integer):
        return f"its format_version attribute is {str(version)[:40]!r}, not an integer"
    return None


def _committed_rows(store: FeatureStore, report: VerifyReport) -> dict[str, int]:
    """Committed rows by split (HDF5 name); a split whose ``n_rows`` is not a count is a problem."""
    rows: dict[str, int] = {}
    splits = store.file.get("splits")
    if not isinstance(splits, h5py.Group):
        return rows
    for name in splits:
        try:
            ds = splits[name]["n_rows"]
            if not isinstance(ds, h5py.Dataset) or ds.shape != () or ds.dtype.kind not in "iu":
                report.problems.append(f"split {name!r}: n_rows is {getattr(ds, 'shape', '?')} "
                                       f"{getattr(ds, 'dtype', '?')}, not an integer count")
                continue
            n = int(ds[()])
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            report.problems.append(f"split {name!r}: n_rows cannot be read ({_first_line(exc)})")
            continue
        if n < 0:
            report.problems.append(f"split {name!r}: n_rows is {n}, a negative count")
            continue
        rows[name] = n
    return rows


# Arrays under /encoders/<key>/ with one row per split row, by the HDF5 name of the split.
_PER_ROW = ("images", "done", "norms", "views", "views_done")
# A dataset whose logical size is this many times its stored bytes (and over a GiB) has a crafted
# shape: no compression reaches it, and reading it would take minutes of fill values.
_MAX_INFLATION = 4096


def _rows_of(name: str, rows: dict[str, int]) -> int | None:
    """The committed rows the dataset at ``name`` is indexed by, when it is per split row."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "splits" and parts[2] != "n_rows":
        return rows.get(parts[1])
    if len(parts) == 4 and parts[0] == "encoders" and parts[2] in _PER_ROW:
        return rows.get(parts[3])
    return None


def _shape_problem(name: str, obj: h5py.Dataset, rows: dict[str, int]) -> str | None:
    """Why the dataset's shape cannot be right, checked before reading it (None when plausible)."""
    n = _rows_of(name, rows)
    parts = name.split("/")
    if n is not None and (obj.shape == () or obj.shape is None):
        return f"/{name}: a scalar, not one value per row"
    if n is not None and parts[0] == "splits" and obj.shape[0] < n:
        return None  # said by _check_splits
    if obj.chunks is None or obj.shape is None or obj.is_virtual:
        return None
    read_shape = obj.shape if n is None else (min(obj.shape[0], n), *obj.shape[1:])  # only committed rows are read
    logical = int(np.prod(read_shape, dtype=np.float64)) * obj.dtype.itemsize
    stored = obj.id.get_storage_size()
    if logical > 2**30 and logical > _MAX_INFLATION * max(stored, 1):
        return (f"/{name}: shape {obj.shape} ({logical} bytes) held in {stored} stored bytes: a crafted or "
                "damaged shape, not read")
    return None


def _read_everything(f: h5py.File, report: VerifyReport, rows: dict[str, int]) -> None:
    names: list[str] = []
    for top in f:
        if top.startswith(STAGING):  # a killed writer's unfinished objects: never read
            continue
        names.append(top)
        if isinstance(f.get(top), h5py.Group):
            try:
                f[top].visit(lambda name, top=top: names.append(f"{top}/{name}"))
            except (OSError, RuntimeError, KeyError) as exc:
                report.problems.append(f"/{top}: its object tree cannot be walked ({_first_line(exc)})")
    for name in names:
        try:
            obj = f[name]
            dict(obj.attrs)
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            report.problems.append(f"/{name}: cannot be opened ({_first_line(exc)})")
            continue
        if not isinstance(obj, h5py.Dataset):
            continue
        report.datasets += 1
        try:
            shape_problem = _shape_problem(name, obj, rows)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            shape_problem = f"/{name}: its shape cannot be read ({_first_line(exc)})"
        if shape_problem is not None:
            report.problems.append(shape_problem)
            continue
        if obj.is_virtual:
            root = Path(f.filename).parent
            for source in obj.virtual_sources():
                if not (root / source.file_name).is_file() and not Path(source.file_name).is_file():
                    report.problems.append(f"/{name}: its source {source.file_name} is missing")
        try:
            if obj.shape == () or obj.shape is None:
                obj[()]
            else:
                n = _rows_of(name, rows)
                # rows past the committed ones are a killed writer's, never read by anyone
                stop = obj.shape[0] if n is None else min(obj.shape[0], n)
                for start in range(0, stop, READ_ROWS):
                    block = obj[start:min(start + READ_ROWS, stop)]
                    report.bytes_read += getattr(block, "nbytes", 0)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            report.problems.append(f"/{name}: cannot be read ({_first_line(exc)})")


def _check_splits(store: FeatureStore, report: VerifyReport, rows: dict[str, int]) -> None:
    try:
        splits = store.splits()
        encoders = store.encoders()
    except (FeatureStoreError, OSError, RuntimeError, KeyError) as exc:
        report.problems.append(f"the store's listing cannot be read ({_first_line(exc)})")
        return
    for split in splits:
        if split.replace("/", "|") not in rows:
            continue  # its n_rows is a problem already
        try:
            n = store.n_rows(split)
            group = store.file[f"splits/{split.replace('/', '|')}"]
            short = False
            for column in SPLIT_COLUMNS:
                if group[column].shape[0] < n:
                    report.problems.append(f"split {split!r}: column {column} has {group[column].shape[0]} of {n} rows")
                    short = True
            if short:
                continue
            labels = group["labels"]
            if labels.dtype.kind not in "iu":
                report.problems.append(f"split {split!r}: labels are {labels.dtype}, not integer class indices")
            elif n and int(np.min(labels[:n])) < -1:
                report.problems.append(f"split {split!r}: a label below -1 ({int(np.min(labels[:n]))})")
            for encoder in encoders:
                if store.has_features(encoder, split):
                    done = store.done(encoder, split)
                    if not done.all():
                        report.notes.append(f"encoder {encoder!r}, split {split!r}: {int(done.sum())} of {n} rows "
                                            "extracted (fs extract finishes them)")
        except (FeatureStoreError, OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            report.problems.append(f"split {split!r}: {_first_line(exc)}")


def _check_metadata(store: FeatureStore, report: VerifyReport) -> None:
    """The JSON attributes readers parse (encoder provenance, saved models' metadata) parse."""
    try:
        encoders = store.encoders()
        models = store.models()
    except (FeatureStoreError, OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        report.problems.append(f"the store's listing cannot be read ({_first_line(exc)})")
        return
    for encoder in encoders:
        try:
            store.encoder_info(encoder)
        except (FeatureStoreError, OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            report.problems.append(f"encoder {encoder!r}: its provenance attributes cannot be read "
                                   f"({_first_line(exc)})")
    for model in models:
        try:
            meta = store.file["models"][model.replace("/", "|")].attrs.get("meta")
            if meta is not None:
                json.loads(meta)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            report.problems.append(f"model {model!r}: its metadata cannot be read ({_first_line(exc)})")


def raise_if_damaged(report: VerifyReport) -> None:
    """One line for the CLI when the store is damaged."""
    if not report.ok:
        raise StoreFormatError(f"{report.path} is damaged: {len(report.problems)} problem(s), first: "
                               f"{report.problems[0]}")

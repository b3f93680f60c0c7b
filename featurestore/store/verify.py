"""`fs verify`: read a whole store and report every part that is damaged.

Checks, in order: the file is not empty or truncated (size against the superblock's
end-of-file address), the "open for write" mark (a killed writer's, cleared with ``repair``),
the file opens, every dataset reads in full (HDF5 verifies the fletcher32 checksums of feature
arrays and saved arrays on each read; metadata checksums are verified for every object), the
sources of virtual (sharded) datasets exist, each split's columns and done masks cover its
committed rows; unfinished objects of killed writers (staging) are noted, not read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from featurestore.errors import FeatureStoreError, StoreFormatError
from featurestore.store.feature_store import SPLIT_COLUMNS, STAGING, FeatureStore
from featurestore.store.files import looks_empty
from featurestore.store.superblock import clear_consistency_flags, consistency_flags, superblock_eof
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
    with store:
        _read_everything(store.file, report)
        _check_splits(store, report)
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
    return report


def _read_everything(f: h5py.File, report: VerifyReport) -> None:
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
        if obj.is_virtual:
            root = Path(f.filename).parent
            for source in obj.virtual_sources():
                if not (root / source.file_name).is_file() and not Path(source.file_name).is_file():
                    report.problems.append(f"/{name}: its source {source.file_name} is missing")
        try:
            if obj.shape == () or obj.shape is None:
                obj[()]
            else:
                for start in range(0, obj.shape[0], READ_ROWS):
                    block = obj[start:start + READ_ROWS]
                    report.bytes_read += getattr(block, "nbytes", 0)
        except (OSError, RuntimeError, ValueError) as exc:
            report.problems.append(f"/{name}: cannot be read ({_first_line(exc)})")


def _check_splits(store: FeatureStore, report: VerifyReport) -> None:
    try:
        splits = store.splits()
        encoders = store.encoders()
    except (FeatureStoreError, OSError, RuntimeError, KeyError) as exc:
        report.problems.append(f"the store's listing cannot be read ({_first_line(exc)})")
        return
    for split in splits:
        try:
            n = store.n_rows(split)
            group = store.file[f"splits/{split.replace('/', '|')}"]
            for column in SPLIT_COLUMNS:
                if group[column].shape[0] < n:
                    report.problems.append(f"split {split!r}: column {column} has {group[column].shape[0]} of {n} rows")
            for encoder in encoders:
                if store.has_features(encoder, split):
                    done = store.done(encoder, split)
                    if not done.all():
                        report.notes.append(f"encoder {encoder!r}, split {split!r}: {int(done.sum())} of {n} rows "
                                            "extracted (fs extract finishes them)")
        except (FeatureStoreError, OSError, RuntimeError, KeyError) as exc:
            report.problems.append(f"split {split!r}: {_first_line(exc)}")


def raise_if_damaged(report: VerifyReport) -> None:
    """One line for the CLI when the store is damaged."""
    if not report.ok:
        raise StoreFormatError(f"{report.path} is damaged: {len(report.problems)} problem(s), first: "
                               f"{report.problems[0]}")

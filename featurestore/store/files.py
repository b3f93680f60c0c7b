"""Opening a store's HDF5 file: readers that never hang and recover from a dead writer,
writers that take over what a killed writer left.

Readers open in SWMR-read mode with a bounded number of metadata read attempts (HDF5's
default for SWMR readers retries a failing checksum for hours with a growing back-off, so a
damaged file used to hang a reader forever). A file whose superblock still says "open for
write" has either a live writer in its short non-SWMR phase (the reader waits, bounded) or a
writer that died (the reader checks that no process holds the writer lock and clears the
stale mark, as the next writer would). A file shorter than its superblock's end-of-file
address is truncated: one line, at once.
"""
from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

import h5py
import numpy as np

from featurestore.errors import StoreBusyError, StoreEmptyError, StoreFormatError
from featurestore.store.superblock import SIGNATURE, clear_consistency_flags, consistency_flags, superblock_eof
from featurestore.store.switch_journal import roll_back
from featurestore.store.write_points import write_point
from featurestore.store.writer_lock import hold_if_free

CHUNK_CACHE_BYTES = 64 * 2**20
# A live reader waits this long for a writer's non-SWMR phase (creating or switching objects).
READER_WAIT_SECONDS = 10.0
# SWMR readers retry a metadata read whose checksum fails (a writer may be mid-write); HDF5's
# back-off doubles per attempt, so 16 attempts bound a damaged block to ~0.1 s.
METADATA_READ_ATTEMPTS = 16
# An HDF5 file this small holds a superblock and nothing committed (a writer killed before its
# first flush leaves 48 bytes).
EMPTY_FILE_BYTES = 2048

_OPEN_FOR_WRITE = ("already open for write", "not already open for SWMR writing")


def is_open_for_write_error(exc: BaseException) -> bool:
    """True for HDF5's refusal of a file marked "open for write" (HDF5 1.x and 2.0 wordings)."""
    return any(text in str(exc) for text in _OPEN_FOR_WRITE)


def _libhdf5() -> ctypes.CDLL | None:
    """The HDF5 library h5py runs on (for the one property h5py does not expose)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted({line.split()[-1] for line in maps
                            if "libhdf5" in line and ".so" in line and "_hl" not in line})
    except OSError:
        paths = []
    if not paths:
        from ctypes.util import find_library  # it imports shutil, tempfile ...: only where /proc does not say

        paths = [find_library("hdf5") or ""]
    for path in paths:
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
            lib.H5Pset_metadata_read_attempts  # noqa: B018 (exists?)
            return lib
        except (OSError, AttributeError):
            continue
    return None


_LIB: ctypes.CDLL | bool | None = False


def _reader_fapl() -> h5py.h5p.PropFAID:
    global _LIB
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    fapl.set_file_locking(False, True)
    fapl.set_cache(0, 521, CHUNK_CACHE_BYTES, 0.75)
    if _LIB is False:
        _LIB = _libhdf5()
    if isinstance(_LIB, ctypes.CDLL):
        _LIB.H5Pset_metadata_read_attempts(ctypes.c_int64(fapl.id), ctypes.c_uint(METADATA_READ_ATTEMPTS))
    return fapl


def file_size(path: Path) -> int:
    return os.stat(path).st_size


def looks_empty(path: Path) -> bool:
    """A file a writer created but never committed to: 0 bytes, or an HDF5 superblock with
    nothing readable behind it (a writer killed before its first flush leaves 48 bytes)."""
    try:
        size = file_size(path)
    except OSError:
        return False
    if size == 0:
        return True
    if size > EMPTY_FILE_BYTES:
        return False
    with open(path, "rb") as f:
        if f.read(len(SIGNATURE)) != SIGNATURE:
            return False
    try:
        h5py.File(path, "r", locking=False).close()
    except OSError as exc:
        return not is_open_for_write_error(exc) or _unreadable_even_if_cleared(path)
    return False


def _unreadable_even_if_cleared(path: Path) -> bool:
    """A tiny file marked open for write: is there anything behind the superblock?"""
    try:
        eof = superblock_eof(path)
    except (ValueError, OSError):
        return True
    return eof is None or file_size(path) < eof


def _check_not_truncated(path: Path) -> None:
    """Refuse a file shorter than the end-of-file address its superblock records (no writer)."""
    try:
        eof = superblock_eof(path)
    except (ValueError, OSError):
        return  # not HDF5 at all: h5py's own error names it
    size = file_size(path)
    if eof is not None and size < eof:
        raise StoreFormatError(
            f"{path} is truncated ({size} of {eof} bytes): the store is damaged; restore it from a copy "
            "or extract again into a new store"
        )


def _closed_cleanly(path: Path) -> bool:
    try:
        return consistency_flags(path) == 0
    except (ValueError, OSError):
        return True


def open_reader(path: Path, wait_seconds: float = READER_WAIT_SECONDS) -> h5py.File:
    """Open ``path`` for SWMR reading (see the module doc). Raises StoreFormatError subclasses."""
    if looks_empty(path):
        raise StoreEmptyError(
            f"{path} is an empty store: its first writer stopped before committing anything; "
            "run fs extract (or any writing command) to start it again"
        )
    deadline = time.monotonic() + wait_seconds
    recovered = False
    while True:
        with hold_if_free(path) as no_writer:
            if no_writer:
                _roll_back_dead_switch(path)
            if no_writer and _closed_cleanly(path):
                # (A dead writer's file may be shorter than the end it recorded: the recovery
                # below extends it, as the next writer would.)
                _check_not_truncated(path)
            try:
                fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ,
                                    fapl=_reader_fapl())
                return h5py.File(fid)
            except OSError as exc:
                if not is_open_for_write_error(exc):
                    raise StoreFormatError(
                        f"{path} is not a readable HDF5 store ({_first_line(exc)}); fs verify {path} checks it"
                    ) from None
                if no_writer and not recovered:
                    # A dead writer's mark: no process holds the lock and none can start while
                    # we hold it, so the file on disk is as the writer last flushed it.
                    recovered = True
                    try:
                        write_point("clear a dead writer's open-for-write mark")
                        clear_consistency_flags(path)
                        continue
                    except PermissionError:
                        raise StoreFormatError(
                            f"{path} was left marked open for write by a writer that was killed; it "
                            f"cannot be cleared without write permission: run fs verify --repair {path} "
                            "as its owner"
                        ) from None
                    except ValueError as bad:
                        raise StoreFormatError(f"{path} is not an HDF5 store ({bad})") from None
        if time.monotonic() > deadline:
            raise StoreBusyError(
                f"{path} is being restructured by a writer (creating or replacing objects) for more "
                f"than {wait_seconds:.0f} s; try again when it finishes"
            )
        time.sleep(0.05)


def _roll_back_dead_switch(path: Path) -> None:
    """Undo the unfinished switch (model, text bank, logits) of a writer that was killed, as the next
    writer would (featurestore/store/switch_journal.py); the caller holds the writer lock."""
    try:
        roll_back(path)
    except PermissionError:
        raise StoreFormatError(
            f"{path} holds a switch a killed writer left unfinished; it cannot be rolled back without write "
            f"permission: run fs verify --repair --store {path} as its owner"
        ) from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def check_links_inside(file: h5py.File, path: Path) -> None:
    """Refuse a store whose objects reach out of its own file: an external link, a dataset kept in
    another file (HDF5 external storage), or a virtual dataset whose source is an absolute path or
    climbs out of the store's folder (``..``). The relative sources ``fs extract --cluster`` links
    (shard files beside the store, or ``.``) pass. A crafted store could otherwise have readers
    read, and writers write, another file. Also refuse a feature array (``images``, ``views``,
    ``norms``) without the fletcher32 checksum the format (version 2 on) gives every one."""
    problems: list[str] = []
    unchecked: list[str] = []
    version = file.attrs.get("format_version")
    checksums = isinstance(version, (int, np.integer)) and int(version) >= 2

    def outside(where: str) -> bool:
        return where != "." and (os.path.isabs(where) or ".." in Path(where).parts)

    def check(group: h5py.Group) -> None:
        """Record the first link below ``group`` that reaches out, walking with the low-level API
        (no Python object per HDF5 object: this runs on every open). An object whose metadata
        cannot be read is passed over (raising inside h5py's walk would surface as a
        SystemError); reading it fails on its own."""
        prefix = group.name.rstrip("/")

        def link(name: bytes) -> int | None:
            try:
                external = group.id.links.get_info(name).type == h5py.h5l.TYPE_EXTERNAL
                target = group.get(name.decode(), getlink=True) if external else None
            except (RuntimeError, KeyError, OSError, ValueError):
                return None
            if isinstance(target, h5py.ExternalLink):
                problems.append(f"{prefix}/{name.decode()} is an external link to {target.filename}:{target.path}")
                return 1
            return None

        def dataset(name: bytes, info: h5py.h5o.ObjInfo) -> int | None:
            if info.type != h5py.h5o.TYPE_DATASET:
                return None
            try:
                dcpl = h5py.h5d.open(group.id, name).get_create_plist()
                if dcpl.get_external_count():
                    where = os.fsdecode(dcpl.get_external(0)[0])
                    problems.append(f"{prefix}/{name.decode()} keeps its data in {where} (HDF5 external storage)")
                    return 1
                if dcpl.get_layout() != h5py.h5d.VIRTUAL:
                    if checksums and _is_feature_array(prefix, name.decode()) and not _has_fletcher32(dcpl):
                        unchecked.append(f"{prefix}/{name.decode()}")
                        return 1
                    return None
                sources = [source.file_name for source in group[name.decode()].virtual_sources()]
            except (RuntimeError, KeyError, OSError, ValueError):
                return None
            for where in sources:
                if outside(where):
                    problems.append(f"{prefix}/{name.decode()} is a virtual dataset reading {where}, outside the "
                                    "store's folder")
                    return 1
            return None

        if group.id.links.visit(link) is None:
            h5py.h5o.visit(group.id, dataset, info=True)

    # Each top-level group on its own: a group a killed writer damaged (its reads fail on their
    # own, and `fs verify` names it) must neither leave the others unchecked nor make opening a
    # traceback. The root's own links are the first level of the root's walk.
    for name in list(file):
        try:
            member = file.get(name, getlink=True)
            if isinstance(member, h5py.ExternalLink):
                problems.append(f"/{name} is an external link to {member.filename}:{member.path}")
            else:
                obj = file.get(name)
                if isinstance(obj, h5py.Group):
                    check(obj)
                elif isinstance(obj, h5py.Dataset) and obj.id.get_create_plist().get_external_count():
                    problems.append(f"/{name} keeps its data in another file (HDF5 external storage)")
                elif isinstance(obj, h5py.Dataset) and obj.is_virtual:
                    problems += [f"/{name} is a virtual dataset reading {s.file_name}, outside the store's folder"
                                 for s in obj.virtual_sources() if outside(s.file_name)]
        except (RuntimeError, KeyError, OSError):
            continue
        if problems or unchecked:
            break
    if problems:
        raise StoreFormatError(f"{path} reaches outside its file: {problems[0]}; a store keeps its data in its "
                               "own file and the --cluster shard files beside it (refused)")
    if unchecked:
        raise StoreFormatError(f"{path}: the feature array {unchecked[0]} has no fletcher32 checksum, which the "
                               "store format gives every feature array (a crafted or foreign file; refused)")


_FEATURE_KINDS = ("images", "views", "norms")


def _is_feature_array(prefix: str, name: str) -> bool:
    """``/encoders/<key>/{images,views,norms}/<split>``, given the walked group and the name below it."""
    parts = f"{prefix}/{name}".strip("/").split("/")
    return len(parts) == 4 and parts[0] == "encoders" and parts[2] in _FEATURE_KINDS


def _has_fletcher32(dcpl: h5py.h5p.PropDCID) -> bool:
    return any(dcpl.get_filter(i)[0] == h5py.h5z.FILTER_FLETCHER32 for i in range(dcpl.get_nfilters()))

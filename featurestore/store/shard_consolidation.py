"""Splits built by ``fs extract --cluster``: check that their shard files are there, and copy
them into the store file (``fs consolidate``) so it no longer needs its ``.shards/`` folder.

Such a split's columns and each encoder's arrays are HDF5 virtual datasets over the shard stores
(``featurestore.store.virtual_split``). HDF5 reads a missing source as fill values, which would make
every row look unreadable; :func:`check_shard_files` names the missing files instead. Copying
keeps the ordinary split layout (fixed-size row chunks, checksums on numeric arrays, growable),
so the split then behaves as one extracted without a cluster.

The shard files are read through read-only handles of their own, never through the virtual
datasets of the store open for writing (HDF5 opens a virtual dataset's sources with the intent of
the file holding it, so they were marked open for write, and a kill left them marked). Every
array, and the split's whole group (its six columns, ``n_rows`` and attributes), is copied under
``/.staging`` first; then one journaled switch (``FeatureStore._journaled``, the store's undo
journal) moves all of them in. A kill leaves the split and its encoder arrays as they were
(linked) or all consolidated, never some of each, and a rerun finishes it.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from featurestore.errors import FeatureStoreError, MissingShardsError, NotFoundError
from featurestore.store.feature_store import ROW_CHUNK, SPLIT_COLUMNS, FeatureStore, h5_name
from featurestore.store.files import check_links_inside, open_reader
from featurestore.store.superblock import consistency_flags
from featurestore.store.write_points import write_point

COPY_ROWS = 65536
ENCODER_ARRAYS = ("norms", "images", "done", "views", "views_done")  # each array before its done mask


def linked_datasets(file: h5py.File, split: str) -> list[str]:
    """Paths of the virtual datasets of ``split``: its columns, then each encoder's arrays."""
    key = h5_name(split)
    group = file["splits"].get(key)
    if group is None:
        return []
    paths = [f"{group.name}/{c}" for c in SPLIT_COLUMNS if c in group and group[c].is_virtual]
    for encoder in file.get("encoders", {}).values():
        for kind in ENCODER_ARRAYS:
            path = f"{encoder.name}/{kind}/{key}"
            if path in file and file[path].is_virtual:
                paths.append(path)
    return paths


def missing_shard_files(file: h5py.File, split: str) -> list[str]:
    """Shard files (as linked, relative to the store's folder) that ``split`` reads and that are
    not there."""
    root = Path(file.filename).resolve().parent
    names: dict[str, None] = {}
    for path in linked_datasets(file, split):
        for source in file[path].virtual_sources():
            names.setdefault(source.file_name, None)
    return [n for n in names if not (root / n).is_file()]


def marked_shard_files(file: h5py.File) -> list[Path]:
    """The shard files any split of the store reads that carry HDF5's "open for write" mark (a
    writer killed while it had them open; HDF5 then refuses to read them, so the split reads as
    damaged until the mark is cleared: ``fs verify --repair``, or ``fs consolidate``)."""
    root = Path(file.filename).resolve().parent
    found: dict[Path, None] = {}
    for key in file["splits"]:
        for path in linked_datasets(file, key.replace("|", "/")):
            for source in file[path].virtual_sources():
                shard = root / source.file_name
                if shard not in found and shard.is_file() and _marked(shard):
                    found[shard] = None
    return list(found)


def _marked(path: Path) -> bool:
    try:
        return consistency_flags(path) != 0
    except (ValueError, OSError):
        return False  # not HDF5, or unreadable: reading it says so


def check_shard_files(file: h5py.File, split: str) -> None:
    """Raise MissingShardsError naming what is missing when ``split`` links absent shard files."""
    missing = missing_shard_files(file, split)
    if missing:
        folders = sorted({str(Path(n).parent) for n in missing})
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise MissingShardsError(
            f"split {split!r} was extracted with --cluster and reads {len(missing)} shard file(s) that are "
            f"missing beside {file.filename}: {shown}; copy the folder {', '.join(folders)} with the store "
            "(or run fs consolidate on the original store before copying it)")


def consolidate(store: FeatureStore, split: str, progress: bool = False) -> dict[str, object]:
    """Copy every virtual dataset of ``split`` into the store file. Returns what was copied:
    ``{"split", "arrays", "rows", "bytes", "shard_folders"}`` (``arrays`` 0: already consolidated)."""
    store._require_writer()
    if split not in store.splits():
        raise NotFoundError(f"no split {split!r} in {store.path} (it has: {', '.join(store.splits()) or 'none'})")
    file = store.file
    check_shard_files(file, split)
    paths = linked_datasets(file, split)
    root = Path(store.path).resolve().parent
    folders = sorted({str(Path(s.file_name).parent) for p in paths for s in file[p].virtual_sources()})
    report: dict[str, object] = {"split": split, "arrays": len(paths), "rows": store.n_rows(split), "bytes": 0,
                                 "shard_folders": [os.path.normpath(root / f) for f in folders]}
    if not paths:
        store._idle()
        return report
    key = h5_name(split)
    split_group = f"/splits/{key}"
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(file[p].shape[0] for p in paths), desc=f"consolidate {split}", unit="row", leave=False)
    shards: dict[str, h5py.File] = {}
    switches: list[tuple[str, str]] = []
    copied = 0
    try:
        store._staging_group()
        for path in (p for p in paths if not p.startswith(f"{split_group}/")):
            staged = store._staged_path()
            copied += _copy(file, path, staged, root, shards, bar)
            switches.append((staged, path))
        if any(p.startswith(f"{split_group}/") for p in paths):
            staged = store._staged_path()
            write_point(f"create the consolidated group of split {split}")
            group = file.create_group(staged)
            old = file[split_group]
            for name, value in old.attrs.items():
                group.attrs[name] = value
            for name in old:
                where = f"{split_group}/{name}"
                if name in SPLIT_COLUMNS and old[name].is_virtual:
                    copied += _copy(file, where, f"{staged}/{name}", root, shards, bar)
                else:  # n_rows, or a column a killed older run had already copied
                    write_point(f"copy {where}")
                    file.copy(old[name], group, name)
            del old, group
            switches.append((staged, split_group))
    finally:
        for shard in shards.values():
            shard.close()
        if bar is not None:
            bar.close()
    write_point(f"flush the consolidated copies of split {split}")
    file.flush()
    with store._journaled():  # every array and the split's group move in, or none does
        for staged, target in switches:
            store._remove(target)
            write_point(f"move the consolidated {target} in")
            store.file.move(staged, target)
    store._idle()
    report["bytes"] = copied
    return report


def _copy(file: h5py.File, path: str, staged: str, root: Path, shards: dict[str, h5py.File],
          bar: object | None) -> int:
    """Write the rows of the virtual dataset ``path`` into a new ordinary dataset at ``staged``,
    reading each source from its shard file opened read-only; returns the bytes copied."""
    source = file[path]
    write_point(f"create the consolidated copy of {path}")
    target = file.create_dataset(staged, **_layout(path, source))
    for name, value in source.attrs.items():
        target.attrs[name] = value
    for mapping in source.virtual_sources():
        shard = shards.get(mapping.file_name)
        if shard is None:
            shard = shards[mapping.file_name] = open_reader(root / mapping.file_name)
            check_links_inside(shard, root / mapping.file_name)  # a shard is a store: its data in its own file
        data = shard[mapping.dset_name]
        first, last = mapping.vspace.get_select_bounds()
        rows = data.shape[0]
        if (mapping.src_space.get_select_npoints() != mapping.src_space.get_simple_extent_npoints()
                or last[0] - first[0] + 1 != rows or data.shape[1:] != source.shape[1:]):
            raise FeatureStoreError(f"{path} maps {mapping.file_name}:{mapping.dset_name} otherwise than as a "
                                    "block of whole rows; fs consolidate copies only what fs extract --cluster links")
        for start in range(0, rows, COPY_ROWS):
            stop = min(rows, start + COPY_ROWS)
            write_point(f"copy rows of {path}")
            target[first[0] + start:first[0] + stop] = data[start:stop]
            if bar is not None:
                bar.update(stop - start)  # type: ignore[attr-defined]
    # an open handle of the virtual dataset while it is unlinked leaves HDF5 a freed heap object
    # ("bad heap pointer" on the next SWMR start): no handle outlives the copy
    size = int(np.prod(source.shape)) * source.dtype.itemsize if source.dtype.kind != "O" else 0
    del source, target
    return size


def _layout(path: str, source: h5py.Dataset) -> dict[str, object]:
    """The creation arguments an ordinary (non-virtual) array at ``path`` has in a store."""
    shape, tail = source.shape, source.shape[1:]
    kind = path.rsplit("/", 2)[-2]
    if path.startswith("/splits/"):
        return {"shape": shape, "maxshape": (None,), "chunks": (ROW_CHUNK,), "dtype": source.dtype,
                "fletcher32": source.dtype.kind != "O"}
    if kind in ("done", "views_done"):
        return {"shape": shape, "maxshape": (None,), "chunks": (ROW_CHUNK,), "dtype": bool, "fillvalue": False}
    if kind == "norms":
        return {"shape": shape, "maxshape": (None,), "chunks": (ROW_CHUNK,), "dtype": np.float32,
                "fillvalue": np.nan, "fletcher32": True}
    chunk_rows = max(1, min(ROW_CHUNK, (1 << 20) // (int(np.prod(tail)) * source.dtype.itemsize)))
    return {"shape": shape, "maxshape": (None, *tail), "chunks": (chunk_rows, *tail), "dtype": source.dtype,
            "fletcher32": True}

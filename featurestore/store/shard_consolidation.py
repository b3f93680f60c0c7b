"""Splits built by ``fs extract --cluster``: check that their shard files are there, and copy
them into the store file (``fs consolidate``) so it no longer needs its ``.shards/`` folder.

Such a split's columns and each encoder's arrays are HDF5 virtual datasets over the shard stores
(``featurestore.store.virtual_split``). HDF5 reads a missing source as fill values, which would make
every row look unreadable; :func:`check_shard_files` names the missing files instead. Copying
keeps the ordinary split layout (fixed-size row chunks, checksums on numeric arrays, growable),
so the split then behaves as one extracted without a cluster. Each array is written under
``/.staging`` and switched in whole; the ids column goes last, so a killed run leaves a split
that still reads the same and a rerun finishes it.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from featurestore.errors import MissingShardsError, NotFoundError
from featurestore.store.feature_store import ROW_CHUNK, SPLIT_COLUMNS, FeatureStore, h5_name
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
    ``{"split", "arrays", "rows", "bytes", "shard_folder"}`` (``arrays`` 0: already consolidated)."""
    store._require_writer()
    if split not in store.splits():
        raise NotFoundError(f"no split {split!r} in {store.path} (it has: {', '.join(store.splits()) or 'none'})")
    file = store.file
    check_shard_files(file, split)
    paths = linked_datasets(file, split)
    ids_path = f"/splits/{h5_name(split)}/ids"
    paths.sort(key=lambda p: p == ids_path)  # ids last: a split is "from shards" while they are linked
    folders = sorted({str(Path(s.file_name).parent) for p in paths for s in file[p].virtual_sources()})
    total = sum(file[p].shape[0] for p in paths)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"consolidate {split}", unit="row", leave=False)
    copied = 0
    for path in paths:
        source = file[path]
        store._staging_group()
        staged = store._staged_path()
        write_point(f"create the consolidated copy of {path}")
        target = file.create_dataset(staged, **_layout(path, source))
        for start in range(0, source.shape[0], COPY_ROWS):
            stop = min(source.shape[0], start + COPY_ROWS)
            write_point(f"copy rows of {path}")
            target[start:stop] = source[start:stop]
            if bar is not None:
                bar.update(stop - start)
        for name, value in source.attrs.items():
            target.attrs[name] = value
        copied += int(np.prod(source.shape)) * source.dtype.itemsize if source.dtype.kind != "O" else 0
        # an open handle of the virtual dataset while it is unlinked leaves HDF5 a freed heap object
        # ("bad heap pointer" on the next SWMR start): close both handles before the switch
        del source, target
        store._switch_in(staged, path)
    if bar is not None:
        bar.close()
    file.flush()
    store._idle()
    root = Path(store.path).resolve().parent
    return {"split": split, "arrays": len(paths), "rows": store.n_rows(split), "bytes": copied,
            "shard_folders": [os.path.normpath(root / f) for f in folders]}


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

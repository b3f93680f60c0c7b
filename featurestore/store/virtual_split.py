"""Linking shard stores into one split of the main store with HDF5 virtual datasets (no copy).

Each shard file is itself a store holding one contiguous block of the split's rows. The main
store's ``/splits/<split>`` columns and each encoder's arrays become virtual datasets that
concatenate the shards in shard order, so readers see one ordinary split. Source file names
are stored relative to the main store, so the store and its shard folder can move together.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from featurestore.errors import FeatureStoreError
from featurestore.store.feature_store import SPLIT_COLUMNS, STR, FeatureStore, h5_name
from featurestore.store.write_points import write_point


def _virtual(group: h5py.Group, name: str, sources: list[tuple[str, str, tuple[int, ...]]],
             dtype: np.dtype) -> None:
    """Create ``group[name]`` concatenating (file, dataset path, shape) sources along rows."""
    rows = sum(shape[0] for _, _, shape in sources)
    tail = sources[0][2][1:]
    layout = h5py.VirtualLayout(shape=(rows, *tail), dtype=dtype)
    offset = 0
    for file_name, path, shape in sources:
        if shape[0]:
            layout[offset:offset + shape[0]] = h5py.VirtualSource(file_name, path, shape=shape)
        offset += shape[0]
    fill = None if dtype == STR else np.zeros((), dtype=dtype)
    write_point(f"create virtual dataset {name}")
    group.create_virtual_dataset(name, layout, fillvalue=fill)


def link_shards(store: FeatureStore, split: str, shard_paths: list[Path]) -> None:
    """(Re)create ``split`` in the main store as virtual datasets over ``shard_paths``.

    Encoders whose features are complete in every shard are linked; others are left out
    until their sharded extraction finishes. The split group and each encoder array are built
    under /.staging and switched in whole, so a kill while linking leaves the previous links
    (or none) and a rerun links again.
    """
    store._require_writer()
    root = Path(store.path).resolve().parent
    shards = [FeatureStore(p) for p in shard_paths]
    try:
        names = [os.path.relpath(Path(p).resolve(), root) for p in shard_paths]
        splits = store.file["splits"]
        key = h5_name(split)
        if key in splits and not splits[key]["ids"].is_virtual:
            raise FeatureStoreError(
                f"split {split!r} already exists as an ordinary split; use another split name for --cluster"
            )
        store._staging_group()
        staged = store._staged_path()
        write_point(f"create the linked split {split}")
        group = store.file.create_group(staged)
        counts = [s.n_rows(split) for s in shards]
        for column in SPLIT_COLUMNS:
            dtype = shards[0].file[f"splits/{key}/{column}"].dtype
            _virtual(group, column, [(n, f"/splits/{key}/{column}", (c,)) for n, c in zip(names, counts)], dtype)
        group.create_dataset("n_rows", data=int(sum(counts)), dtype=np.int64)
        first = shards[0].file[f"splits/{key}"]
        group.attrs["has_captions"] = any(s.file[f"splits/{key}"].attrs.get("has_captions", False) for s in shards)
        group.attrs["source"] = first.attrs.get("source", "")
        classes = shards[0].classes(split)
        group.attrs["classes"] = split if classes else ""
        if classes:
            store._put_classes(split, classes)
        store._switch_in(staged, f"/splits/{key}")
        for encoder in shards[0].encoders():
            if not all(s.has_features(encoder, split) and s.done(encoder, split).all() for s in shards):
                continue
            _link_encoder(store, shards, names, counts, encoder, split)
        write_point("flush the links")
        store.file.flush()
        store._idle()
    finally:
        for s in shards:
            s.close()


def _link_encoder(store: FeatureStore, shards: list[FeatureStore], names: list[str], counts: list[int],
                  encoder: str, split: str) -> None:
    ekey, skey = h5_name(encoder), h5_name(split)
    source_group = shards[0].file[f"encoders/{ekey}"]
    encoders = store.file["encoders"]
    if ekey not in encoders:
        staged = store._staged_path()
        write_point(f"create encoder {encoder}")
        created = store.file.create_group(staged)
        for attr, value in source_group.attrs.items():
            created.attrs[attr] = value
        store._switch_in(staged, f"/encoders/{ekey}")
    target = store.file["encoders"][ekey]
    kinds: list[tuple[str, str | None]] = [("images", "done")]
    if all(f"views/{skey}" in s.file[f"encoders/{ekey}"] for s in shards):
        kinds.append(("views", "views_done"))
    if all(f"norms/{skey}" in s.file[f"encoders/{ekey}"] for s in shards):
        kinds.insert(0, ("norms", None))  # raw embedding norms, linked before the images' done mask
    for data_kind, done_kind in kinds:
        for kind in (k for k in (data_kind, done_kind) if k):  # the array before its done mask
            path = f"/encoders/{ekey}/{kind}/{skey}"
            shapes = [(c, *shards[0].file[path].shape[1:]) for c in counts]
            staged = store._staged_path()
            parent_name, _, leaf = staged.rpartition("/")
            _virtual(store.file[parent_name], leaf, [(n, path, shape) for n, shape in zip(names, shapes)],
                     shards[0].file[path].dtype)
            store._switch_in(staged, f"{target.name}/{kind}/{skey}")

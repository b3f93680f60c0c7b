"""Standard datasets by name: readers that turn a dataset's own on-disk layout (CoOp's split
files, ImageNet folders, FGVC listings, torchvision arrays, CLIP_benchmark webdataset exports)
into the same sources as a folder or a manifest, one per split, with the dataset's class names
and prompt templates.

``open_dataset("oxford_pets", "~/data")`` reads one; ``dataset_status("~/data")`` says which of
the known datasets are present (what ``fs datasets`` prints); ``extract_dataset`` embeds every
split and encodes the dataset's templates as a class bank (``fs extract --dataset``).
"""
from __future__ import annotations

import glob
import os
from types import ModuleType
from typing import Any

from featurestore.datasets.catalogue import (
    DATASETS,
    FEWSHOT_ELEVEN,
    IMAGENET_SHIFTS,
    WDS_PREFIX,
    DatasetInfo,
    dataset_info,
)
from featurestore.datasets.loaded import LoadedDataset, dataset_templates
from featurestore.errors import SourceError

__all__ = [
    "DATASETS", "FEWSHOT_ELEVEN", "IMAGENET_SHIFTS", "DatasetInfo", "LoadedDataset", "dataset_info", "dataset_status",
    "dataset_templates", "open_dataset", "split_source_dataset"
]


def _family(info: DatasetInfo) -> ModuleType:
    """The reader module of ``info``'s layout family (``DatasetInfo.family``), with ``load`` and
    ``expected``. Imported here, not with the package: ``split_source_dataset`` (every ``fs solve``)
    needs no reader, nor the sources and tarfile they import. torchvision is imported when a
    torchvision dataset is read."""
    from featurestore.datasets import clip_benchmark_wds, coop_split, fgvc_variants, imagenet_folders, torchvision_sets

    readers = (clip_benchmark_wds, coop_split, fgvc_variants, imagenet_folders, torchvision_sets)
    return {module.__name__.rsplit(".", 1)[1]: module for module in readers}[info.family]


def open_dataset(name: str, root: str | os.PathLike, *, download: bool = False) -> LoadedDataset:
    """Read dataset ``name`` (see ``DATASETS``, or ``wds:<folder>``) under ``root``.

    A missing or incomplete dataset raises ``SourceError`` with one line naming the expected
    path and what is missing. ``download`` only applies to torchvision datasets.
    """
    info = dataset_info(name)
    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if not os.path.isdir(root):
        raise SourceError(f"data root {root} is not a folder")
    return _family(info).load(info, root, download=download)


def dataset_status(root: str | os.PathLike, *, count_files: bool = True) -> list[dict[str, Any]]:
    """For every known dataset (and each ``wds_*`` folder under ``root``): its expected layout,
    whether it is found, rows per split, and how many listed images are missing on disk."""
    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    names = list(DATASETS)
    if os.path.isdir(root):
        names += [WDS_PREFIX + os.path.basename(p) for p in sorted(glob.glob(os.path.join(root, "wds_*")))
                  if os.path.isdir(p)]
    out = []
    for name in names:
        info = dataset_info(name)
        entry: dict[str, Any] = {
            "name": name, "title": info.title, "folder": os.path.join(root, info.folder),
            "layout": ", ".join(f"{info.folder}/{p}" for p in _family(info).expected(info)),
            "published": dict(info.sizes) if info.n_classes else {}, "classes": info.n_classes or None,
            "found": False, "rows": {}, "missing_files": 0, "problem": None,
        }
        if not os.path.isdir(entry["folder"]):
            entry["problem"] = "not found"
            out.append(entry)
            continue
        try:
            loaded = open_dataset(name, root)
        except SourceError as exc:
            entry["problem"] = str(exc)
            out.append(entry)
            continue
        entry["found"] = True
        entry["classes"] = len(loaded.classes)
        for split, source in loaded.splits.items():
            records = source.records()
            entry["rows"][split] = len(records)
            if count_files:
                entry["missing_files"] += sum(1 for r in records if "::" not in r.path and not os.path.isfile(r.path))
        out.append(entry)
    return out


def split_source_dataset(spec: str) -> str | None:
    """The dataset name recorded in a split's source spec (``dataset:<name>:<folder>``), or None."""
    if not spec.startswith("dataset:"):
        return None
    return spec[len("dataset:"):].rsplit(":", 1)[0] if spec.count(":") >= 2 else None

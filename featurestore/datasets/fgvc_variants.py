"""FGVC-Aircraft in its own release layout, as CoOp reads it: ``variants.txt`` (one class name
per line, label = line index) and ``images_variant_{train,val,test}.txt`` (lines
``<image id> <variant name>``, the image being ``images/<image id>.jpg``)."""
from __future__ import annotations

import os

from featurestore.datasets.catalogue import DatasetInfo
from featurestore.datasets.listed_files import ListedFilesSource
from featurestore.datasets.loaded import LoadedDataset, dataset_templates, read_lines, require
from featurestore.errors import SourceError

SPLITS = ("train", "val", "test")


def expected(info: DatasetInfo) -> list[str]:
    return ["variants.txt"] + [f"images_variant_{s}.txt" for s in SPLITS] + [info.options["images"] + "/"]


def load(info: DatasetInfo, root: str, download: bool = False) -> LoadedDataset:
    folder = os.path.join(root, info.folder)
    require(folder, info.title, expected(info))
    classes = read_lines(os.path.join(folder, "variants.txt"))
    label_of = {name: i for i, name in enumerate(classes)}
    splits = {}
    for split in SPLITS:
        listing = os.path.join(folder, f"images_variant_{split}.txt")
        items = []
        for number, line in enumerate(read_lines(listing), start=1):
            image, _, variant = line.partition(" ")
            if variant not in label_of:
                raise SourceError(f"{info.title}: line {number} of {listing} names variant {variant!r}, "
                                  "which variants.txt does not list")
            items.append((f"{image}.jpg", label_of[variant]))
        if not items:
            raise SourceError(f"{info.title}: {listing} lists no images")
        splits[split] = ListedFilesSource(split, f"dataset:{info.name}:{folder}",
                                          os.path.join(folder, info.options["images"]), items, classes,
                                          keep_order=True)
    return LoadedDataset(info, folder, classes, splits, dataset_templates(info.templates))

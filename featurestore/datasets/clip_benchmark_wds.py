"""A dataset exported in LAION CLIP_benchmark's webdataset layout (``clip_benchmark_export_wds``):

    <folder>/train/*.tar, <folder>/test/*.tar     samples with an image member and a ``.cls`` label
    <folder>/classnames.txt                       one class name per line (label = line index)
    <folder>/zeroshot_classification_templates.txt  one prompt template per line, ``{c}`` for the name

Named ``wds:<folder>`` (relative to the data root). The shards are read by featurestore's
WebDataset source; the class names and templates come from the two text files.
"""
from __future__ import annotations

import glob
import os

from featurestore.datasets.catalogue import DatasetInfo
from featurestore.datasets.loaded import LoadedDataset, read_lines, require
from featurestore.errors import SourceError
from featurestore.sources.webdataset import WebDatasetSource

SPLITS = ("train", "test")


def expected(info: DatasetInfo) -> list[str]:
    return ["classnames.txt", "zeroshot_classification_templates.txt", "test/*.tar"]


def load(info: DatasetInfo, root: str, download: bool = False) -> LoadedDataset:
    folder = os.path.join(root, info.folder)
    require(folder, info.title, ["classnames.txt", "zeroshot_classification_templates.txt", "test"])
    classes = read_lines(os.path.join(folder, "classnames.txt"))
    template_file = os.path.join(folder, "zeroshot_classification_templates.txt")
    templates = [t.replace("{c}", "{}") for t in read_lines(template_file)]
    bad = [t for t in templates if t.count("{}") != 1]
    if bad:
        raise SourceError(f"{info.title}: template {bad[0]!r} in {folder}/zeroshot_classification_templates.txt "
                          "has no single {c}")
    splits = {}
    for split in SPLITS:
        shards = sorted(glob.glob(os.path.join(folder, split, "*.tar")))
        if not shards:
            if split == "test":
                raise SourceError(f"{info.title}: no .tar shards in {os.path.join(folder, split)}")
            continue
        source = WebDatasetSource(shards, classes=classes, spec=f"dataset:{info.name}:{folder}")
        source.name = split
        splits[split] = source
    return LoadedDataset(info, folder, classes, splits, templates)

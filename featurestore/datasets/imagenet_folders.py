"""ImageNet and its distribution-shift sets in CoOp's layout: one folder of images per class,
and a ``classnames.txt`` (lines ``<wnid> <class name>``, CLIP's ImageNet class names).

- ImageNet: ``images/train/<wnid>/`` and ``images/val/<wnid>/``; the official val set is the
  test split (CoOp and every few-shot paper do the same). ImageNet has no val split here:
  ``fs benchmark`` says so and takes validation rows from the training pool.
- ImageNet-V2: ``imagenetv2-matched-frequency-format-val/<0..999>/`` (folder = label).
- ImageNet-Sketch, -A, -R: ``<images>/<wnid>/``. A and R cover 200 of the 1000 classes.

Labels of every set index ImageNet's 1000 classes in sorted-wnid order (CoOp's order), so one
store holds ImageNet and its shift sets as splits and one text bank serves them all; a set
covering fewer classes records them as its class subset. Files in a folder are taken in sorted
name order (CoOp lists them with ``os.listdir``, whose order depends on the file system).
"""
from __future__ import annotations

import os

from featurestore.datasets.catalogue import DatasetInfo
from featurestore.datasets.listed_files import ListedFilesSource
from featurestore.datasets.loaded import LoadedDataset, dataset_templates, read_lines, require
from featurestore.errors import SourceError
from featurestore.sources.folder import is_image_name


def expected(info: DatasetInfo) -> list[str]:
    if info.options["kind"] == "imagenet":
        return ["classnames.txt", "images/train/", "images/val/"]
    return ["classnames.txt", info.options["images"] + "/"]


def read_classnames(path: str, title: str) -> tuple[list[str], list[str]]:
    """(wnids in sorted order, class names in the same order) from a classnames.txt."""
    names = {}
    for number, line in enumerate(read_lines(path), start=1):
        wnid, _, name = line.partition(" ")
        if not name:
            raise SourceError(f"{title}: line {number} of {path} is not '<wnid> <class name>'")
        names[wnid] = name
    wnids = sorted(names)
    return wnids, [names[w] for w in wnids]


def _class_folders(directory: str) -> list[str]:
    return sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))


def _images(directory: str) -> list[str]:
    return sorted(e.name for e in os.scandir(directory) if e.is_file() and is_image_name(e.name))


def _folder_items(base: str, folders: list[str], label_of: dict[str, int], prefix: str = "") -> list[tuple[str, int]]:
    items = []
    for folder in folders:
        items += [(f"{prefix}{folder}/{name}", label_of[folder])
                  for name in _images(os.path.join(base, prefix, folder))]
    return items


def load(info: DatasetInfo, root: str, download: bool = False) -> LoadedDataset:
    folder = os.path.join(root, info.folder)
    require(folder, info.title, expected(info))
    wnids, classes = read_classnames(os.path.join(folder, "classnames.txt"), info.title)
    label_of = {w: i for i, w in enumerate(wnids)}
    spec = f"dataset:{info.name}:{folder}"
    kind = info.options["kind"]
    if kind == "imagenet":
        base = os.path.join(folder, "images")
        splits = {}
        for split, sub in (("train", "train"), ("test", "val")):
            present = _class_folders(os.path.join(base, sub))
            unknown = [f for f in present if f not in label_of]
            if unknown:
                raise SourceError(f"{info.title}: folder(s) {unknown[:3]} in {base}/{sub} are not in classnames.txt")
            splits[split] = ListedFilesSource(split, spec, base, _folder_items(base, present, label_of, f"{sub}/"),
                                              classes, keep_order=False)
        return LoadedDataset(info, folder, classes, splits, dataset_templates(info.templates))
    base = os.path.join(folder, info.options["images"])
    present = _class_folders(base)
    if kind == "numbered":
        bad = [f for f in present if not f.isdigit() or int(f) >= len(classes)]
        if bad:
            raise SourceError(
                f"{info.title}: folder(s) {bad[:3]} in {base} are not class numbers 0..{len(classes) - 1}")
        numbered = {f: int(f) for f in present}
        items = _folder_items(base, sorted(present, key=int), numbered)
        covered = sorted(numbered.values())
    else:
        unknown = [f for f in present if f not in label_of]
        if unknown:
            raise SourceError(f"{info.title}: folder(s) {unknown[:3]} in {base} are not in classnames.txt")
        items = _folder_items(base, present, label_of)
        covered = [label_of[f] for f in present]
    if not info.subset and len(covered) != len(classes):
        raise SourceError(f"{info.title}: {base} has {len(covered)} class folders, classnames.txt lists {len(classes)}")
    source = ListedFilesSource(info.name, spec, base, items, classes, keep_order=False)
    subset = [classes[i] for i in covered] if info.subset else None
    return LoadedDataset(info, folder, classes, {info.name: source}, dataset_templates(info.templates), subset)

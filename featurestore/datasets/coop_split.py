"""CoOp's split files: ``<folder>/split_zhou_<Name>.json`` holding ``{"train": [...], "val": [...],
"test": [...]}`` lists of ``[image path relative to the image folder, label, class name]``.

Used by Caltech101, OxfordPets, StanfordCars, Flowers102, Food101, SUN397, DTD, EuroSAT and UCF101
(CoOp's datasets/*.py read them with ``OxfordPets.read_split``). Class names are taken from the
triples (label -> name, the same in every split); underscores become spaces, as CoOp and
Tip-Adapter do before prompting. A split file made from the raw folders instead of CoOp's is
cleaned the way CoOp cleans it when it makes one: EuroSAT's folder names are replaced by the
spelled-out names, Caltech101's airplanes/Faces/Leopards/Motorbikes are renamed, and its
BACKGROUND_Google and Faces_easy images are refused (CoOp drops those classes).
"""
from __future__ import annotations

import json
import os

from featurestore.datasets.catalogue import DatasetInfo
from featurestore.datasets.listed_files import ListedFilesSource
from featurestore.datasets.loaded import LoadedDataset, dataset_templates, require
from featurestore.errors import SourceError

SPLITS = ("train", "val", "test")


def expected(info: DatasetInfo) -> list[str]:
    """Paths the layout needs under the dataset folder."""
    images = info.options["images"]
    return [info.options["split_file"]] + ([images + "/"] if images != "." else [])


def _triples(path: str, title: str) -> dict[str, list]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceError(f"{title}: cannot read split file {path} ({exc})") from None
    if not isinstance(data, dict) or any(not isinstance(data.get(s), list) for s in SPLITS):
        raise SourceError(f"{title}: split file {path} must hold train, val and test lists")
    for split in SPLITS:
        for number, item in enumerate(data[split], start=1):
            if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
                    or isinstance(item[1], bool) or not isinstance(item[1], int) or not isinstance(item[2], str)):
                raise SourceError(f"{title}: entry {number} of {split!r} in {path} is not "
                                  f"[path, integer label, class name]: {item!r}")
    return data


def class_name(raw: str, info: DatasetInfo) -> str:
    """CoOp's clean-ups of a class name: the dataset's renames, then underscores to spaces."""
    return info.options.get("renamed", {}).get(raw, raw).replace("_", " ")


def load(info: DatasetInfo, root: str, download: bool = False) -> LoadedDataset:
    """Read the split file; one source per split, rows in the file's order."""
    folder = os.path.join(root, info.folder)
    require(folder, info.title, expected(info))
    split_file = os.path.join(folder, info.options["split_file"])
    data = _triples(split_file, info.title)
    dropped = set(info.options.get("dropped", ()))
    names: dict[int, str] = {}
    for split in SPLITS:
        for rel, label, raw in data[split]:
            if rel.split("/", 1)[0] in dropped:
                raise SourceError(f"{info.title}: {split_file} lists {rel}, but class "
                                  f"{rel.split('/', 1)[0]} is not part of the dataset (CoOp drops it)")
            name = class_name(raw, info)
            if names.setdefault(label, name) != name:
                raise SourceError(f"{info.title}: label {label} is named both {names[label]!r} and {name!r} "
                                  f"in {split_file}")
    if sorted(names) != list(range(len(names))):
        raise SourceError(f"{info.title}: labels in {split_file} are not 0..{len(names) - 1}")
    classes = [names[i] for i in range(len(names))]
    base = os.path.normpath(os.path.join(folder, info.options["images"]))
    splits = {}
    for split in SPLITS:
        if not data[split]:
            raise SourceError(f"{info.title}: split {split!r} of {split_file} is empty")
        splits[split] = ListedFilesSource(split, f"dataset:{info.name}:{folder}", base,
                                          [(rel, label) for rel, label, _ in data[split]], classes,
                                          keep_order=True)
    return LoadedDataset(info, folder, classes, splits, dataset_templates(info.templates))

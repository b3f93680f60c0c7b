"""What a dataset reader returns, the dataset's prompt templates, and the one-line layout errors."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from featurestore.datasets.catalogue import DatasetInfo
from featurestore.errors import SourceError

if TYPE_CHECKING:
    from featurestore.sources.record import Source


@dataclass
class LoadedDataset:
    """A named dataset read from disk: its class names, one source per store split, and, for a
    class-subset shift set (ImageNet-A/-R), the class names its test images cover."""

    info: DatasetInfo
    folder: str
    classes: list[str]
    splits: Mapping[str, Source]
    templates: list[str]
    subset: list[str] | None = None


def dataset_templates(key: str) -> list[str]:
    """The prompt templates shipped for dataset ``key`` (featurestore/data/dataset_templates.json)."""
    from importlib import resources  # it imports tempfile, shutil, bz2, lzma: not with the package

    text = resources.files("featurestore").joinpath("data/dataset_templates.json").read_text(encoding="utf-8")
    entry = json.loads(text).get(key)
    if entry is None:
        raise SourceError(f"no prompt templates are shipped for dataset {key!r}")
    return list(entry["templates"])


def require(folder: str | os.PathLike, title: str, needed: list[str]) -> None:
    """One line naming the dataset folder and every required path missing under it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{title}: folder {folder} not found (expected {', '.join(needed)} in it; see `fs datasets`)")
    missing = [name for name in needed if not (folder / name).exists()]
    if missing:
        raise SourceError(f"{title}: {folder} is incomplete, missing {', '.join(missing)} (see `fs datasets`)")


def read_lines(path: str | os.PathLike) -> list[str]:
    """Non-empty stripped lines of a text file."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]

"""Datasets in torchvision's on-disk formats, read through torchvision's own dataset classes:
CIFAR-10 (``<root>/cifar-10-batches-py/``), CIFAR-100 (``<root>/cifar-100-python/``), STL-10
(``<root>/stl10_binary/``, its labelled train and test splits) and MNIST (``<root>/MNIST/raw/``).

Nothing is downloaded unless asked (``download=True``, ``fs extract --download``). Images live
inside arrays, not files: each record's bytes are the image torchvision returns for it, encoded as
PNG (lossless) when the extraction reads it; rows are ``train/00042`` / ``test/00042`` in the
arrays' order. None of these has a val split: ``fs benchmark`` says so and takes validation rows
from the training pool. A dataset's ``options`` name its torchvision class, whether it takes
``split=`` (STL-10) or ``train=``, and class names where the prompts use others than
torchvision's (MNIST: "0" .. "9", as CLIP's prompts).
"""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from featurestore.datasets.catalogue import DatasetInfo
from featurestore.datasets.loaded import LoadedDataset, dataset_templates
from featurestore.errors import SourceError
from featurestore.sources.record import Record


def expected(info: DatasetInfo) -> list[str]:
    return [info.folder + "/"]


def _open(info: DatasetInfo, root: str, train: bool, download: bool) -> Any:
    import torchvision.datasets as tvd

    cls = getattr(tvd, info.options["dataset"])
    which = {"split": "train" if train else "test"} if info.options.get("split_argument") else {"train": train}
    try:
        return cls(root=root, download=download, **which)
    except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
        hint = "" if download else "; pass --download to fetch it"
        raise SourceError(f"{info.title}: {os.path.join(root, info.folder)} is missing or incomplete "
                          f"({str(exc).splitlines()[0]}){hint}") from None


class TorchvisionArraySource:
    """One split of a torchvision array dataset as records; bytes are PNG-encoded on demand.

    Pickles without the arrays (DataLoader workers reopen the dataset from disk once)."""

    def __init__(self, info: DatasetInfo, root: str, split: str, dataset: Any) -> None:
        self.info, self.root, self.name = info, os.path.abspath(root), split
        self.spec = f"dataset:{info.name}:{os.path.join(self.root, info.folder)}"
        self.classes: list[str] | None = list(info.options.get("classes") or dataset.classes)
        self._dataset = dataset
        self._n = len(dataset)

    def records(self) -> list[Record]:
        where = os.path.join(self.root, self.info.folder)
        labels = self._targets()
        return [Record(id=f"{self.name}/{i:05d}", path=f"{where}::{self.name}/{i}", label=int(labels[i]))
                for i in range(self._n)]

    def _targets(self) -> list[int]:
        data = self._data()
        labels = getattr(data, "targets", None)  # CIFAR, MNIST (a tensor there); STL-10 has labels
        return np.asarray(data.labels if labels is None else labels).tolist()

    def _data(self) -> Any:
        if self._dataset is None:
            self._dataset = _open(self.info, self.root, self.name == "train", False)
        return self._dataset

    def read_bytes(self, record: Record) -> bytes:
        from PIL import Image

        index = int(record.id.rsplit("/", 1)[1])
        image, _ = self._data()[index]  # the PIL image torchvision makes of the array (no transform)
        if not isinstance(image, Image.Image):
            raise SourceError(f"{self.info.title}: torchvision returned {type(image).__name__} for {record.id}, "
                              "not an image")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_dataset"] = None
        return state


def load(info: DatasetInfo, root: str, download: bool = False) -> LoadedDataset:
    splits = {split: TorchvisionArraySource(info, root, split, _open(info, root, split == "train", download))
              for split in ("train", "test")}
    classes = list(splits["train"].classes or [])
    return LoadedDataset(info, os.path.join(root, info.folder), classes, splits, dataset_templates(info.templates))

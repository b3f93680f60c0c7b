"""Embed a named dataset into a store: every split it has, its class names, and its prompt
templates encoded as the default class bank (``fs extract --dataset NAME --root DIR``)."""
from __future__ import annotations

import os
from typing import Any

from featurestore.datasets import LoadedDataset, open_dataset
from featurestore.store.feature_store import FeatureStore
from featurestore.text.banks import DATASET_BANK


def bank_name(split: str) -> str:
    """The class bank holding a dataset's own templates: ``<first split>/dataset``."""
    return f"{split}/{DATASET_BANK}"


def subset_name(split: str) -> str:
    """The class list naming the classes a shift split covers (ImageNet-A/-R)."""
    return f"{split}/subset"


def extract_dataset(name: str | LoadedDataset, root: str | os.PathLike, store_path: str | os.PathLike, encoder: Any, *,
                    download: bool = False, quiet: bool = False, **extract_options: Any) -> list[Any]:
    """Extract every split of dataset ``name`` (train/val/test as the dataset has them; a shift
    set such as ``imagenet_a`` becomes one split named after it, labelled in ImageNet's classes,
    so it can join the ImageNet store), then encode the dataset's templates over its class
    names into the class bank ``<first split>/dataset`` unless the store already has a bank of
    the same classes and templates for this encoder. ``name`` may be a dataset already read
    with ``open_dataset``. Returns the extraction reports.
    """
    from featurestore.extract.pipeline import extract
    from featurestore.text.banks import class_prompt_embeddings

    dataset = name if isinstance(name, LoadedDataset) else open_dataset(name, root, download=download)
    reports = [extract(source, store_path, encoder, split=split, quiet=quiet, **extract_options)
               for split, source in dataset.splits.items()]
    first = next(iter(dataset.splits))
    with FeatureStore(store_path, mode="a") as store:
        if dataset.subset is not None:
            store.put_classes(subset_name(first), dataset.subset)
        if _has_bank(store, encoder.key, dataset.classes, dataset.templates):
            return reports
    weights, per_template = class_prompt_embeddings(encoder, dataset.classes, dataset.templates, quiet=quiet)
    strings = [t.format(c) for c in dataset.classes for t in dataset.templates]
    with FeatureStore(store_path, mode="a") as store:
        store.put_text_bank(encoder.key, bank_name(first), weights, strings, kind="classes",
                            classes=dataset.classes, templates=dataset.templates, per_template=per_template)
    return reports


def _has_bank(store: FeatureStore, encoder: str, classes: list[str], templates: list[str]) -> bool:
    for bank in store.text_banks(encoder):
        entry = store.text_bank(encoder, bank)
        if (entry.get("kind") == "classes" and list(entry.get("classes", [])) == classes
                and list(entry.get("templates", [])) == templates):
            return True
    return False

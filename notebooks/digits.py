"""The notebooks' image set: scikit-learn's bundled handwritten digits (1,797 8x8 images, 10
classes; no download) written as upscaled PNGs into ``train/val/test`` class folders, and a store
of their features. Notebook 01 walks through these steps one by one; 02-04 call
:func:`prepare_store`, which skips whatever the work directory already holds."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

CLASS_NAMES = [str(d) for d in range(10)]
# CLIP's own MNIST prompts (Radford et al., 2021, notebooks/Prompt_Engineering_for_ImageNet.ipynb)
TEMPLATES = ['a photo of the number: "{}".']
SPLITS = {"train": 0.5, "val": 0.2, "test": 0.3}
BANK = "train/digits"


def write_digits(root: str | os.PathLike, size: int = 64, seed: int = 0) -> dict[str, Path]:
    """Write the digits as ``root/<split>/<digit>/<index>.png`` (dark ink on white, ``size`` px),
    split per class 50/20/30 with a seeded shuffle; returns each split's folder. Existing
    folders are kept as they are."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    folders = {split: root / split for split in SPLITS}
    if (root / ".complete").exists():
        return folders
    digits = load_digits()
    rng = np.random.default_rng(seed)
    for label in range(10):
        rows = rng.permutation(np.flatnonzero(digits.target == label))
        cuts = np.cumsum([round(share * len(rows)) for share in SPLITS.values()])[:-1]
        for split, part in zip(SPLITS, np.split(rows, cuts)):
            folder = folders[split] / CLASS_NAMES[label]
            folder.mkdir(parents=True, exist_ok=True)
            for i in part:
                ink = (255 - digits.images[i] * (255 / 16)).astype(np.uint8)
                image = Image.fromarray(ink, "L").resize((size, size), Image.BICUBIC).convert("RGB")
                image.save(folder / f"{i:04d}.png")
    (root / ".complete").touch()
    return folders


def prepare_store(workdir: str | os.PathLike, encoder: Any, quiet: bool = True) -> tuple[Path, str]:
    """Digits written under ``workdir``, every split extracted with ``encoder`` into
    ``workdir/digits.h5`` and the class prompts encoded (bank ``train/digits``); returns
    (store path, encoder key). Finished work is skipped, so this is cheap to re-run."""
    from featurestore.extract.pipeline import extract
    from featurestore.sources import ImageFolderSource
    from featurestore.store.feature_store import FeatureStore
    from featurestore.text.banks import class_prompt_embeddings

    store = Path(workdir) / "digits.h5"
    folders = write_digits(Path(workdir) / "digits")
    for split, folder in folders.items():
        extract(ImageFolderSource(folder), store, encoder, split=split, workers=0, quiet=quiet)
    with FeatureStore(store) as reader:
        has_bank = BANK in reader.text_banks(encoder.key)
    if not has_bank:
        weights, per_template = class_prompt_embeddings(encoder, CLASS_NAMES, TEMPLATES)
        with FeatureStore(store, mode="a") as writer:
            writer.put_text_bank(encoder.key, BANK, weights, [t.format(c) for c in CLASS_NAMES for t in TEMPLATES],
                                 kind="classes", classes=CLASS_NAMES, templates=TEMPLATES, per_template=per_template)
    return store, encoder.key

"""Test helper: tiny dataset trees in each named-dataset layout, built from the real CIFAR-10
JPEGs in ../shared/data/cifar10-small (tests skip with a reason when they are absent)."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

CIFAR_SMALL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar10-small"
CLASSES = ("airplane", "automobile", "bird")


def cifar_images(split: str, cls: str, n: int) -> list[Path]:
    """The first ``n`` JPEGs (sorted) of a class of cifar10-small; skips the test if absent."""
    folder = CIFAR_SMALL / split / cls
    if not folder.is_dir():
        pytest.skip(f"real test images not found: {folder}")
    return sorted(folder.glob("*.jpg"))[:n]


def coop_tree(root: Path, counts: tuple[int, int, int] = (4, 2, 3)) -> dict:
    """``oxford_pets/images/`` + ``split_zhou_OxfordPets.json``; entries interleave the classes
    (as CoOp's files, which are not grouped by label). Returns the split dict written."""
    folder = root / "oxford_pets"
    (folder / "images").mkdir(parents=True)
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    source = {"train": "train", "val": "val", "test": "test"}
    for name, count in zip(("train", "val", "test"), counts):
        per_class = []
        for label, cls in enumerate(CLASSES):
            entries = []
            for image in cifar_images(source[name], cls, count):
                rel = f"{cls}_{name}_{image.stem}.jpg"
                shutil.copy(image, folder / "images" / rel)
                entries.append([rel, label, cls if label != 1 else "sports_car"])
            per_class.append(entries)
        split[name] = [e for group in zip(*per_class) for e in group][::-1]
    (folder / "split_zhou_OxfordPets.json").write_text(json.dumps(split))
    return split


def fgvc_tree(root: Path) -> dict[str, list[tuple[str, str]]]:
    folder = root / "fgvc_aircraft"
    (folder / "images").mkdir(parents=True)
    variants = ["707-320", "A300B4", "Cessna 172"]
    (folder / "variants.txt").write_text("\n".join(variants) + "\n")
    listing = {}
    for split, source, n in (("train", "train", 3), ("val", "val", 2), ("test", "test", 2)):
        rows = []
        for label, cls in enumerate(CLASSES):
            for image in cifar_images(source, cls, n):
                ident = f"{label}{image.stem}{split[:2]}"
                shutil.copy(image, folder / "images" / f"{ident}.jpg")
                rows.append((ident, variants[label]))
        (folder / f"images_variant_{split}.txt").write_text("".join(f"{i} {v}\n" for i, v in rows))
        listing[split] = rows
    return listing


WNIDS = ("n02691156", "n02814533", "n01530575")  # airplane, car, bird stand-ins; sorted order differs


def imagenet_trees(root: Path) -> None:
    """imagenet/ (train + val folders), imagenetv2/ (numbered) and imagenet-adversarial/ (a
    2-class subset), all sharing one 3-class classnames.txt."""
    names = {"n02691156": "airliner", "n02814533": "beach wagon", "n01530575": "brambling"}
    text = "".join(f"{w} {names[w]}\n" for w in sorted(WNIDS))
    for folder in ("imagenet", "imagenetv2", "imagenet-adversarial"):
        (root / folder).mkdir(parents=True)
        (root / folder / "classnames.txt").write_text(text)
    for sub, source, n in (("train", "train", 3), ("val", "test", 2)):
        for wnid, cls in zip(WNIDS, CLASSES):
            target = root / "imagenet" / "images" / sub / wnid
            target.mkdir(parents=True)
            for image in cifar_images(source, cls, n):
                shutil.copy(image, target / f"{wnid}_{image.stem}.JPEG")
    for label, wnid in enumerate(sorted(WNIDS)):
        target = root / "imagenetv2" / "imagenetv2-matched-frequency-format-val" / str(label)
        target.mkdir(parents=True)
        for image in cifar_images("val", CLASSES[WNIDS.index(wnid)], 2):
            shutil.copy(image, target / f"{image.stem}.jpeg")
    for wnid in WNIDS[:2]:
        target = root / "imagenet-adversarial" / "imagenet-a" / wnid
        target.mkdir(parents=True)
        for image in cifar_images("test", CLASSES[WNIDS.index(wnid)], 2):
            shutil.copy(image, target / f"{image.stem}.jpg")
    (root / "imagenet-adversarial" / "imagenet-a" / "README.txt").write_text("not a class\n")


def cifar_batches(root: Path, n_train: int = 6, n_test: int = 4) -> None:
    """``cifar-10-batches-py/`` in torchvision's pickle format, from real cifar10-small images
    (the md5 check torchvision runs is on the archive, not these files)."""
    from PIL import Image

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(split: str, n: int) -> dict:
        data, labels = [], []
        for label, cls in enumerate(CLASSES):
            for image in cifar_images(split, cls, n):
                pixels = np.asarray(Image.open(image).convert("RGB").resize((32, 32)))
                data.append(pixels.transpose(2, 0, 1).reshape(-1))
                labels.append(label)
        return {"data": np.stack(data).astype(np.uint8), "labels": labels}

    train = batch("train", n_train)
    for i in range(1, 6):
        part = {"data": train["data"][i - 1::5], "labels": train["labels"][i - 1::5]}
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(part, f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch("test", n_test), f)
    names = list(CLASSES) + ["cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)


def _class_images(split: str, n: int, size: int, mode: str = "RGB") -> tuple[list[np.ndarray], list[int]]:
    """``n`` real cifar10-small images per class of ``CLASSES``, resized, with their labels."""
    from PIL import Image

    images, labels = [], []
    for label, cls in enumerate(CLASSES):
        for image in cifar_images(split, cls, n):
            images.append(np.asarray(Image.open(image).convert(mode).resize((size, size))))
            labels.append(label)
    return images, labels


def stl10_binary(root: Path, n_train: int = 2, n_test: int = 3) -> None:
    """``stl10_binary/`` in STL-10's format (torchvision reads it): ``<split>_X.bin`` uint8 images
    3 x 96 x 96 stored column-major, ``<split>_y.bin`` labels counted from 1, class_names.txt."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = _class_images(split, n, 96)
        stacked = np.stack(images).transpose(0, 3, 2, 1)  # (N, 3, W, H): torchvision transposes back
        stacked.astype(np.uint8).tofile(folder / f"{split}_X.bin")
        (np.asarray(labels) + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
    names = list(CLASSES) + ["deer", "dog", "horse", "monkey", "ship", "truck", "cat"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")


def mnist_raw(root: Path, n_train: int = 2, n_test: int = 3) -> None:
    """``MNIST/raw/`` idx files (big-endian magic, counts, then uint8 pixels / labels), from real
    images turned into 28 x 28 grey levels."""
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for prefix, split, n in (("train", "train", n_train), ("t10k", "test", n_test)):
        images, labels = _class_images(split, n, 28, mode="L")
        header = np.array([2051, len(images), 28, 28], dtype=">i4").tobytes()
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(header + np.stack(images).astype(np.uint8).tobytes())
        header = np.array([2049, len(labels)], dtype=">i4").tobytes()
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(header + np.asarray(labels, np.uint8).tobytes())

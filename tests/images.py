"""Small image fixtures written into a test's tmp_path: good, broken and fake images,
class-subfolder trees, CSV/TSV/Parquet manifests and img2dataset-style WebDataset tars.

Every writer returns what a test needs as an independent oracle (paths, exact bytes,
captions), so tests never compare the code against its own output.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".gif": "GIF",
            ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


def random_image(size: tuple[int, int] = (48, 40), seed: int = 0) -> Image.Image:
    """A random-noise RGB PIL image of (width, height) `size`, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def random_image_bytes(fmt: str = "jpg", size: tuple[int, int] = (48, 40), seed: int = 0) -> bytes:
    """Encoded bytes of `random_image(size, seed)` in format `fmt` ("jpg", "png", "webp", ...)."""
    buffer = io.BytesIO()
    random_image(size, seed).save(buffer, _FORMATS["." + fmt.lower().lstrip(".")])
    return buffer.getvalue()


def write_random_image(path: str | Path, size: tuple[int, int] = (48, 40), seed: int = 0) -> Path:
    """Write a random image at `path`, format chosen by its extension; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random_image_bytes(path.suffix, size, seed))
    return path


def write_corrupt_jpeg(path: str | Path, seed: int = 0) -> Path:
    """Write a JPEG cut to half its bytes: the header parses, full decoding fails ("truncated")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = random_image_bytes("jpg", (64, 64), seed)
    path.write_bytes(data[: len(data) // 2])
    return path


def write_empty_file(path: str | Path) -> Path:
    """Write a zero-byte file (name it .jpg/.png to fake an image)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_text_as_image(path: str | Path = "not_an_image.png") -> Path:
    """Write a plain text file, typically under an image name such as "fake.png"."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not an image\n", encoding="utf-8")
    return path


def write_class_tree(root: str | Path, counts: dict[str, int], ext: str = "jpg", seed: int = 0) -> list[str]:
    """Write `counts[name]` random images into `root/<name>/` for each class name.

    Files are named "<i>.<ext>" (i = 0, 1, ...). Returns the relative posix paths written.
    """
    root = Path(root)
    written = []
    for c, (name, count) in enumerate(counts.items()):
        for i in range(count):
            relative = f"{name}/{i}.{ext}"
            write_random_image(root / relative, seed=seed + 1000 * c + i)
            written.append(relative)
    return written


def write_manifest(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write `rows` as a manifest; .csv/.tsv via the csv module, .parquet via pandas+pyarrow.

    Columns are the union of the rows' keys in first-seen order; a missing key is an empty cell.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pandas as pd

        pd.DataFrame(list(rows), columns=columns).to_parquet(path, index=False)
    elif suffix in (".csv", ".tsv"):
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, delimiter="\t" if suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    else:
        raise ValueError(f"unsupported manifest extension {suffix}")
    return path


def write_webdataset_tar(
    path: str | Path,
    count: int,
    *,
    first_key: int = 0,
    ext: str = "jpg",
    labels: Sequence[int] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Write an img2dataset-style shard: "<key>.<ext>", "<key>.txt" (caption), "<key>.json".

    Keys are 5-digit numbers from `first_key`; with `labels`, a "<key>.cls" member is added.
    Returns one dict per sample: key, member (image member name), image (exact bytes),
    caption, label (-1 without labels).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = []
    with tarfile.open(path, "w") as tar:
        for i in range(count):
            key = f"{first_key + i:05d}"
            image = random_image_bytes(ext, (40 + i % 5, 36), seed + first_key + i)
            caption = f"caption of sample {key}"
            label = -1 if labels is None else int(labels[i])
            meta = {"key": key, "caption": caption, "status": "success", "url": f"http://example.com/{key}.{ext}"}
            members = [
                (f"{key}.{ext}", image),
                (f"{key}.txt", caption.encode()),
                (f"{key}.json", json.dumps(meta).encode()),
            ]
            if labels is not None:
                members.append((f"{key}.cls", str(label).encode()))
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
            samples.append({"key": key, "member": f"{key}.{ext}", "image": image, "caption": caption, "label": label})
    return samples

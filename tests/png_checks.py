"""Reading a written PNG back for tests: its pixel size and how many colours it really uses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def png_summary(path: str | Path) -> tuple[tuple[int, int], int, float]:
    """(width, height), number of distinct RGB colours, and the share of pixels that are not
    the most common colour (the background)."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
        size = image.size
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    return size, len(colours), 1.0 - counts.max() / counts.sum()

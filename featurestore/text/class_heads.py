"""A ready-made linear classifier head (W x + b) read from a file, to be stored as a class bank.

Any encoder's features can be classified by a head trained elsewhere (a timm model's ImageNet
classifier, a linear probe of another tool). ``fs text --weights head.npz --classes names.txt``
stores W (C, D) as the bank's weights and b (C,) as its ``bias``. Zero-shot style solvers use
the rows of W as class directions (cosine); the exact head output ``W x_raw + b`` needs the raw
features, ``store.features(...) * store.norms(...)[:, None]``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from featurestore.errors import SourceError

WEIGHT_NAMES = ("W", "weight", "weights")
BIAS_NAMES = ("b", "bias")


def read_head(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """(W (C, D) float32, b (C,) float32 or None) from a ``.npz`` (arrays ``W`` [and ``b``], or
    ``weight`` [and ``bias``]) or a ``.npy`` holding W alone."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            W, b = np.load(path, allow_pickle=False), None
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                names = set(arrays.files)
                w_name = next((n for n in WEIGHT_NAMES if n in names), None)
                if w_name is None:
                    raise SourceError(f"{path} holds {sorted(names)}; the head's weights must be named "
                                      f"{' or '.join(WEIGHT_NAMES)}")
                b_name = next((n for n in BIAS_NAMES if n in names), None)
                W = arrays[w_name]
                b = arrays[b_name] if b_name else None
        else:
            raise SourceError(f"{path}: a head is a .npz (W [, b]) or a .npy (W) file")
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read head {path}: {str(exc).splitlines()[0][:200]}") from None
    for name, value in (("W", W), ("b", b)):
        if value is not None and value.dtype.kind not in "fiu":
            raise SourceError(f"{path}: {name} must be real numbers, not {value.dtype}")
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or min(W.shape) == 0:
        raise SourceError(f"{path}: W must be a (classes, dim) matrix, not shape {W.shape}")
    if b is not None:
        b = np.asarray(b, dtype=np.float64)
        if b.shape != (W.shape[0],):
            raise SourceError(f"{path}: b has shape {b.shape}; it must be ({W.shape[0]},), one per row of W")
    for name, value in (("W", W), ("b", b)):
        if value is not None and (not np.isfinite(value).all() or np.abs(value).max() > np.finfo(np.float32).max):
            raise SourceError(f"{path}: {name} holds non-finite values or values beyond float32")
    if not np.linalg.norm(W, axis=1).all():
        raise SourceError(f"{path}: W has an all-zero row (a class with no direction)")
    return W.astype(np.float32), None if b is None else b.astype(np.float32)


def read_class_file(path: str | os.PathLike) -> list[str]:
    """Class names, one per line (blank lines skipped; repeated names refused)."""
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read class names from {path}: {exc}") from None
    if not names:
        raise SourceError(f"{path} lists no class names")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SourceError(f"{path} lists class {repeated[0]!r} more than once")
    return names

"""A ready-made linear classifier head (W x + b) read from a file, to be stored as a class bank.

Any encoder's features can be classified by a head trained elsewhere (a timm model's ImageNet
classifier, a linear probe of another tool). ``fs text --weights head.npz --classes names.txt``
stores W (C, D) as the bank's weights and b (C,) as its ``bias``. Two different classifiers can
be computed from such a bank:

- **zero-shot** (``fs solve zero-shot``, ``--models zero-shot --bank NAME`` in eval, predict,
  ensemble and ood) uses the rows of W as class directions: logit_scale * cos(x, W_k), no b.
  Its predictions are the head's only when the rows of W have equal norms and b is constant.
- **the head's own logits** W x_raw + b (:func:`head_logits`, :func:`stored_head_logits`) on the
  raw features x_raw = stored unit row * its recorded norm (``store.norms``; extraction records
  them). ``fs text --weights ... --logits SPLITS`` stores them as imported logits named after the
  bank, so ``fs ood --models logits:NAME`` scores the head's output itself.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.errors import NotFoundError, SourceError

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


def head_logits(features: np.ndarray, norms: np.ndarray, W: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """The head's own output W x_raw + b (float64, (N, C)) for stored unit ``features`` (N, D)
    and their recorded raw ``norms`` (N,): x_raw = features * norms."""
    X = np.asarray(features, np.float64)
    n = np.asarray(norms, np.float64)
    W = np.asarray(W, np.float64)
    if X.ndim != 2 or n.shape != (X.shape[0],):
        raise SourceError(f"features {X.shape} and norms {n.shape} must be (N, D) and (N,)")
    if W.ndim != 2 or W.shape[1] != X.shape[1]:
        raise SourceError(f"the head's W is {W.shape}: it needs {X.shape[1]} columns, the features' dimension")
    logits = (X * n[:, None]) @ W.T
    if b is not None:
        b = np.asarray(b, np.float64)
        if b.shape != (W.shape[0],):
            raise SourceError(f"the head's b has shape {b.shape}; it must be ({W.shape[0]},)")
        logits += b
    return logits


def stored_head_logits(store: Any, encoder: str, bank: str, split: str, valid_only: bool = True) -> np.ndarray:
    """W x_raw + b of class bank ``bank`` (a head stored by ``fs text --weights``) on ``split``'s
    rows of ``encoder``, from the stored unit features and their recorded norms. With
    ``valid_only=False`` every committed row, NaN where the image did not decode (the layout of
    imported logits). A bank without a bias uses b = 0; a missing norm is a NotFoundError."""
    entry = store.text_bank(encoder, bank)
    if entry.get("kind") != "classes":
        raise NotFoundError(f"text bank {bank!r} is a {entry.get('kind')!r} bank, not a class bank (a head)")
    valid = store.valid(split)
    logits = head_logits(store.features(encoder, split), store.norms(encoder, split), entry["weights"],
                         entry.get("bias"))
    if valid_only:
        return logits
    out = np.full((valid.size, logits.shape[1]), np.nan)
    out[valid] = logits
    return out

"""Input validation shared by the solvers: every problem a caller can cause is an InputError
(solvers.errors, a ValueError) that names it (wrong rank, non-finite values, mismatched
dimensions, labels out of range, empty classes)."""
from __future__ import annotations

import numpy as np
from solvers.errors import InputError


def check_features(X: object, name: str = "X", n_features: int | None = None,
                   other: str = "text_weights") -> np.ndarray:
    """Return ``X`` as a 2-D finite float array (float16 and integers upcast to float32).

    ``n_features`` is the dimension the features must have; ``other`` names where it comes from,
    so a mismatch reads e.g. "X has 512 features but text_weights has 768".
    """
    if X is None:
        raise InputError(f"{name} is required but None was given")
    arr = np.asarray(X)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                   or np.issubdtype(arr.dtype, np.integer)
                                   or arr.dtype == bool):
        raise InputError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D array (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError(f"{name} has no rows")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise InputError(f"{name} contains NaN or infinite values in {bad} row(s)")
    if n_features is not None and arr.shape[1] != n_features:
        raise InputError(f"{name} has {arr.shape[1]} features but {other} has {n_features}")
    return arr


def check_text_weights(text_weights: object) -> np.ndarray:
    """Return class text embeddings as a finite (C, D) float array."""
    return check_features(text_weights, name="text_weights")


def check_labels(y: object, n_samples: int, n_classes: int | None = None,
                 name: str = "y") -> np.ndarray:
    """Return ``y`` as an int64 vector of length ``n_samples`` with values in [0, n_classes)."""
    if y is None:
        raise InputError(f"{name} is required but None was given")
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D label vector, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise InputError(f"{name} has {arr.shape[0]} labels but X has {n_samples} rows")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InputError(f"{name} must hold integer class indices, got non-integer values")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise InputError(f"{name} has negative label {int(arr.min())}; labels must be in [0, n_classes)")
    if n_classes is not None and arr.size and arr.max() >= n_classes:
        raise InputError(f"{name} has label {int(arr.max())} but there are only {n_classes} classes "
                         f"(labels must be in [0, {n_classes}))")
    return arr


def resolve_n_classes(text_weights: np.ndarray | None, n_classes: int | None,
                      y: np.ndarray | None) -> int:
    """Number of classes C: rows of text_weights when given, else ``n_classes``, else max(y) + 1."""
    if text_weights is not None:
        if n_classes is not None and n_classes != text_weights.shape[0]:
            raise InputError(f"n_classes={n_classes} but text_weights has {text_weights.shape[0]} rows")
        return int(text_weights.shape[0])
    if n_classes is not None:
        if int(n_classes) < 1:
            raise InputError(f"n_classes must be >= 1, got {n_classes}")
        return int(n_classes)
    if y is None:
        raise InputError("cannot tell the number of classes: give text_weights, n_classes or labels")
    arr = np.asarray(y)
    if arr.size == 0:
        raise InputError("cannot tell the number of classes from an empty label vector")
    return int(arr.max()) + 1


def check_class_counts(y: np.ndarray, n_classes: int, minimum: int = 1) -> np.ndarray:
    """Return per-class counts; raise if any class has fewer than ``minimum`` samples."""
    counts = np.bincount(y, minlength=n_classes)
    short = np.flatnonzero(counts < minimum)
    if short.size:
        shown = ", ".join(str(c) for c in short[:10]) + (" ..." if short.size > 10 else "")
        raise InputError(f"{short.size} class(es) have fewer than {minimum} training sample(s): "
                         f"class {shown}")
    return counts


def check_validation_pair(X_val: object, y_val: object, n_features: int,
                          n_classes: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Validate an optional validation split; both or neither of X_val, y_val must be given."""
    if X_val is None and y_val is None:
        return None
    if X_val is None or y_val is None:
        raise InputError("give both X_val and y_val, or neither")
    Xv = check_features(X_val, name="X_val", n_features=n_features, other="X")
    yv = check_labels(y_val, Xv.shape[0], n_classes, name="y_val")
    return Xv, yv

"""Reproducible few-shot subsets: K rows per class, as in the few-shot protocols of CLIP
adaptation papers (CoOp, Tip-Adapter, GDA), drawn with a seeded NumPy generator."""
from __future__ import annotations

import numpy as np


def fewshot_split(labels: np.ndarray, shots: int, seed: int, *, allow_fewer: bool = False) -> np.ndarray:
    """Sorted row indices of ``shots`` random rows per class (rows labelled -1 are ignored).

    The same (labels, shots, seed) always gives the same rows. If a class has fewer than ``shots``
    rows, raise ValueError naming the smallest class, unless ``allow_fewer`` (then all its rows).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if int(shots) < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    labelled = np.flatnonzero(labels != -1)
    if labelled.size == 0:
        raise ValueError("no labelled rows (all labels are -1)")
    if labels[labelled].min() < -1:
        raise ValueError(f"labels must be >= 0 (or -1 for unlabelled), got {labels[labelled].min()}")
    classes, counts = np.unique(labels[labelled], return_counts=True)
    smallest = int(np.argmin(counts))
    if counts[smallest] < shots and not allow_fewer:
        raise ValueError(f"class {classes[smallest]} has only {counts[smallest]} row(s), fewer than "
                         f"shots={shots}; pass allow_fewer=True to take all of its rows")
    rng = np.random.default_rng(seed)
    picked = []
    for cls in classes:
        rows = labelled[labels[labelled] == cls]
        picked.append(rows if rows.size <= shots else rng.choice(rows, size=shots, replace=False))
    return np.sort(np.concatenate(picked))

"""A class-balanced training set from retrieved pool rows (REAL-Linear, Parashar et al., CVPR 2024):
rows retrieved for several classes are ambiguous and dropped; each class keeps at most ``cap``
rows, drawn without replacement with a seeded generator."""
from __future__ import annotations

import numpy as np

from solvers.errors import InputError


def balanced_rows(rows: np.ndarray, classes: np.ndarray, n_classes: int, cap: int,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(positions, labels) sorted by class then position, at most ``cap`` per class.

    ``rows``/``classes`` are (pool position, class) pairs, e.g. captions that mention a class's
    synonyms. A position paired with more than one class is left out.
    """
    if int(cap) < 1:
        raise InputError(f"cap must be at least 1, not {cap}")
    rows = np.asarray(rows, dtype=np.int64)
    classes = np.asarray(classes, dtype=np.int64)
    if rows.shape != classes.shape:
        raise InputError("rows and classes must have the same length")
    pairs = np.unique(np.stack([rows, classes]), axis=1) if rows.size else np.zeros((2, 0), np.int64)
    unique_rows, counts = np.unique(pairs[0], return_counts=True)
    single = np.isin(pairs[0], unique_rows[counts == 1])
    rows, classes = pairs[0][single], pairs[1][single]
    rng = np.random.default_rng(seed)
    out_rows, out_labels = [], []
    for c in range(n_classes):
        members = np.sort(rows[classes == c])
        if len(members) > cap:
            members = np.sort(rng.choice(members, size=int(cap), replace=False))
        out_rows.append(members)
        out_labels.append(np.full(len(members), c, np.int64))
    return np.concatenate(out_rows), np.concatenate(out_labels)

"""Reproducible few-shot subsets: K rows per class, as in the few-shot protocols of CLIP
adaptation papers (CoOp, Tip-Adapter, GDA).

Two samplers: ``"numpy"`` (the default) draws each class's rows with a seeded NumPy generator,
classes in sorted label order; ``"coop"`` reproduces CoOp/Dassl's ``generate_fewshot_dataset``
exactly: Python's ``random`` seeded with the run's seed (their scripts call ``random.seed(seed)``
before building the dataset), classes in order of first appearance in the split's row order,
``random.sample(rows_of_class, K)`` per class. With ``"coop"`` the row order must be the split
file's order (``fs extract --dataset`` stores rows in that order), and the same (labels, shots,
seed) picks the same images CoOp, Tip-Adapter and GDA train on.
"""
from __future__ import annotations

import random

import numpy as np

from solvers.errors import InputError

SAMPLERS = ("numpy", "coop")


def fewshot_split(labels: np.ndarray, shots: int, seed: int, *, allow_fewer: bool = False,
                  sampler: str = "numpy") -> np.ndarray:
    """Sorted row indices of ``shots`` random rows per class (rows labelled -1 are ignored).

    The same (labels, shots, seed) always gives the same rows. If a class has fewer than ``shots``
    rows, raise ValueError naming the smallest class, unless ``allow_fewer`` (then all its rows,
    as Dassl does by default). ``sampler`` is ``"numpy"`` or ``"coop"`` (see the module docstring).
    """
    if sampler not in SAMPLERS:
        raise InputError(f"unknown few-shot sampler {sampler!r}; choose {' or '.join(SAMPLERS)}")
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InputError(f"labels must be 1-D, got shape {labels.shape}")
    if int(shots) < 1:
        raise InputError(f"shots must be >= 1, got {shots}")
    labelled = np.flatnonzero(labels != -1)
    if labelled.size == 0:
        raise InputError("no labelled rows (all labels are -1)")
    if labels[labelled].min() < -1:
        raise InputError(f"labels must be >= 0 (or -1 for unlabelled), got {labels[labelled].min()}")
    classes, groups = _rows_by_class(labels, labelled)
    counts = np.array([rows.size for rows in groups])
    smallest = int(np.argmin(counts))
    if counts[smallest] < shots and not allow_fewer:
        raise InputError(f"class {classes[smallest]} has only {counts[smallest]} row(s), fewer than "
                         f"shots={shots}; pass allow_fewer=True to take all of its rows")
    if sampler == "coop":
        return _coop_rows(groups, int(shots), seed)
    rng = np.random.default_rng(seed)
    picked = [rows if rows.size <= shots else rng.choice(rows, size=shots, replace=False) for rows in groups]
    return np.sort(np.concatenate(picked))


def _rows_by_class(labels: np.ndarray, labelled: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The classes in ascending order and each one's rows in row order, from one stable sort
    (a mask per class would read all n labels C times)."""
    order = labelled[np.argsort(labels[labelled], kind="stable")]
    ordered = labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return ordered[starts], np.split(order, starts[1:])


def _coop_rows(groups: list[np.ndarray], shots: int, seed: int) -> np.ndarray:
    """Dassl's generate_fewshot_dataset on row indices: a fresh ``random.Random(seed)`` (the same
    stream as ``random.seed(seed)``), labels in order of first appearance, ``sample`` per label;
    a class with fewer rows than ``shots`` gives all of them and draws nothing. ``groups``: each
    class's rows in row order."""
    rng = random.Random(seed)
    picked: list[int] = []
    for rows in sorted(groups, key=lambda rows: rows[0]):  # order of first appearance
        rows = rows.tolist()
        picked.extend(rng.sample(rows, shots) if len(rows) >= shots else rows)
    return np.sort(np.asarray(picked, dtype=np.int64))

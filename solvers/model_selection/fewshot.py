"""Reproducible few-shot subsets: K rows per class, as in the few-shot protocols of CLIP
adaptation papers (CoOp, Tip-Adapter, GDA).

Four samplers:

- ``"numpy"`` (the default) draws each class's rows with a seeded NumPy generator, classes in
  sorted label order.
- ``"coop"`` reproduces CoOp/Dassl's ``generate_fewshot_dataset`` exactly: Python's ``random``
  seeded with the run's seed (their scripts call ``random.seed(seed)`` before building the
  dataset), classes in order of first appearance in the split's row order,
  ``random.sample(rows_of_class, K)`` per class; a class with fewer than K rows is taken whole
  (Dassl's default ``repeat=False``).
- ``"gda-iclr24"`` reproduces the draws of GDA's official script (github.com/mrflogs/ICLR24,
  ``main_few_shots.py``): ``random.seed(seed)`` once per seed, then the datasets are built for
  shots 1, 2, 4, 8, 16 in that order, each draw continuing the same stream. The K-shot draw is
  therefore the one made after the draws of every smaller shot count of that loop (K must be one
  of ``ICLR24_SHOTS``). Their ``generate_fewshot_dataset`` keeps ``repeat=True``: a class with
  fewer than K rows gets ``random.choices(rows, k=K)`` (rows repeated; only with ``allow_fewer``).
- ``"tip-adapter"`` reproduces Tip-Adapter's official scripts (github.com/gaopengcuhk/Tip-Adapter,
  ``main.py``): ``random.seed(1)`` whatever the run, one draw of K shots, ``repeat=True`` as
  above. Only seed 1 is accepted (the official code has no other).

With the Python-``random`` samplers the row order must be the split file's order (``fs extract
--dataset`` stores rows in that order), and the same (labels, shots, seed) picks the same images
as the official code.
"""
from __future__ import annotations

import random

import numpy as np

from solvers.errors import InputError

SAMPLERS = ("numpy", "coop", "gda-iclr24", "tip-adapter")
#: The shot counts of ICLR24's main_few_shots.py loop, in the order their draws share one stream.
ICLR24_SHOTS = (1, 2, 4, 8, 16)
#: The seed of Tip-Adapter's main.py (``random.seed(1)`` before the dataset is built).
TIP_ADAPTER_SEED = 1


def fewshot_split(labels: np.ndarray, shots: int, seed: int, *, allow_fewer: bool = False,
                  sampler: str = "numpy") -> np.ndarray:
    """Sorted row indices of ``shots`` random rows per class (rows labelled -1 are ignored).

    The same (labels, shots, seed) always gives the same rows. If a class has fewer than ``shots``
    rows, raise ValueError naming the smallest class, unless ``allow_fewer`` (then all its rows,
    as Dassl does by default; with ``"gda-iclr24"`` and ``"tip-adapter"`` that class's rows drawn
    with replacement up to ``shots``, as their code does, so indices can repeat). ``sampler``: one
    of ``SAMPLERS`` (see the module docstring).
    """
    check_sampler(sampler, shots, seed)
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
    if sampler == "gda-iclr24":
        return _stream_rows(groups, [k for k in ICLR24_SHOTS if k < int(shots)] + [int(shots)], seed)
    if sampler == "tip-adapter":
        return _stream_rows(groups, [int(shots)], TIP_ADAPTER_SEED)
    rng = np.random.default_rng(seed)
    picked = [rows if rows.size <= shots else rng.choice(rows, size=shots, replace=False) for rows in groups]
    return np.sort(np.concatenate(picked))


def check_sampler(sampler: str, shots: int, seed: int) -> None:
    """Refuse an unknown sampler, and a (shots, seed) that the paper's sampler never draws:
    ``"gda-iclr24"`` only shots in ``ICLR24_SHOTS``, ``"tip-adapter"`` only seed 1."""
    if sampler not in SAMPLERS:
        raise InputError(f"unknown few-shot sampler {sampler!r}; choose {', '.join(SAMPLERS)}")
    if sampler == "gda-iclr24" and int(shots) not in ICLR24_SHOTS:
        raise InputError(f"the gda-iclr24 sampler reproduces ICLR24's loop over shots "
                         f"{', '.join(map(str, ICLR24_SHOTS))}; shots={shots} is not one of them")
    if sampler == "tip-adapter" and int(seed) != TIP_ADAPTER_SEED:
        raise InputError(f"the tip-adapter sampler reproduces Tip-Adapter's main.py, which always seeds "
                         f"{TIP_ADAPTER_SEED}; seed {seed} is not one of its draws (use seed {TIP_ADAPTER_SEED})")


def _rows_by_class(labels: np.ndarray, labelled: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The classes in ascending order and each one's rows in row order, from one stable sort
    (a mask per class would read all n labels C times): a radix sort of 16-bit keys when the
    labels fit them, NumPy's stable sort for int64 keys being a merge sort."""
    keys = labels[labelled]
    if keys.dtype.kind in "iu" and keys.max() < 1 << 15:
        counts = np.bincount(keys)
        order = labelled[np.argsort(keys.astype(np.int16), kind="stable")]
        classes = np.flatnonzero(counts)
        return classes, np.split(order, np.cumsum(counts[classes])[:-1])
    order = labelled[np.argsort(keys, kind="stable")]
    ordered = labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return ordered[starts], np.split(order, starts[1:])


def _coop_rows(groups: list[np.ndarray], shots: int, seed: int) -> np.ndarray:
    """Dassl's generate_fewshot_dataset on row indices: a fresh ``random.Random(seed)`` (the same
    stream as ``random.seed(seed)``), labels in order of first appearance, ``sample`` per label;
    a class with fewer rows than ``shots`` gives all of them and draws nothing. ``groups``: each
    class's rows in row order."""
    picked = _dassl_draw(random.Random(seed), groups, shots, repeat=False)
    return np.sort(np.asarray(picked, dtype=np.int64))


def _dassl_draw(rng: random.Random, groups: list[np.ndarray], shots: int, repeat: bool) -> list[int]:
    """One ``generate_fewshot_dataset`` call on row indices with the stream ``rng``: labels in order
    of first appearance, ``sample`` per label; a smaller class is taken whole without a draw
    (``repeat=False``, Dassl's default) or drawn with replacement (``repeat=True``)."""
    picked: list[int] = []
    for rows in sorted(groups, key=lambda rows: rows[0]):  # order of first appearance
        # sample / choices pick by position from len(population) alone: drawing positions from a
        # range takes the same draws as from the list of rows, without building that list
        if rows.size >= shots:
            picked.extend(rows[rng.sample(range(rows.size), shots)].tolist())
        elif repeat:
            picked.extend(rows[rng.choices(range(rows.size), k=shots)].tolist())
        else:
            picked.extend(rows.tolist())
    return picked


def _stream_rows(groups: list[np.ndarray], schedule: list[int], seed: int) -> np.ndarray:
    """The last of the draws ``schedule`` (shot counts) made in turn from one ``random.Random(seed)``
    stream with ``repeat=True``, as the official GDA and Tip-Adapter scripts build their datasets."""
    rng = random.Random(seed)
    picked: list[int] = []
    for shots in schedule:
        picked = _dassl_draw(rng, groups, shots, repeat=True)
    return np.sort(np.asarray(picked, dtype=np.int64))

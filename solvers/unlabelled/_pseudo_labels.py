"""The steps that unsupervised GDA and label-free adaptation share: which unlabelled rows get which
pseudo-label, and the rounds that refresh them.

One rule for both: a row's pseudo-label is the argmax of the current class probabilities; each
class keeps its ``k`` most confident such rows (confidence = that max probability, ties by row
order), optionally only rows with confidence >= ``min_confidence``. A class left with no row (no
row's argmax, or none confident enough) takes the ``k`` rows most probable for it among the rows
that no class has kept yet, classes in index order: a row never carries two labels. The rows are
taken in the feature space the head is fitted in, so the rule holds for a head on CLIP features
and for one on an auxiliary encoder's features alike.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from solvers.errors import InputError


def confident_per_class(labels: np.ndarray, confidence: np.ndarray, n_classes: int, k: int,
                        min_confidence: float | None = None) -> np.ndarray:
    """Sorted row indices of the ``k`` most confident rows of each pseudo-class (above ``min_confidence``)."""
    ok = np.ones(labels.shape[0], bool) if min_confidence is None else confidence >= min_confidence
    rows = np.flatnonzero(ok)
    order = rows[np.lexsort((-confidence[rows], labels[rows]))]
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, np.arange(n_classes))
    rank = np.arange(order.size) - starts[sorted_labels]
    return np.sort(order[rank < k])


def pseudo_label_rows(probs: np.ndarray, k: int,
                      min_confidence: float | None = None) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(rows, labels, filled classes) of the pseudo-labelled training set (the module's rule).

    ``rows`` holds each row at most once; ``filled`` lists the classes that had no kept row and
    took their most probable free rows. InputError when a class can get no row at all (fewer
    unlabelled rows than classes)."""
    n, C = probs.shape
    labels = probs.argmax(axis=1)
    keep = confident_per_class(labels, probs.max(axis=1), C, k, min_confidence)
    rows, out = [keep], [labels[keep]]
    free = np.ones(n, bool)
    free[keep] = False
    empty = [int(c) for c in np.setdiff1d(np.arange(C), labels[keep])]
    for c in empty:
        candidates = np.flatnonzero(free)
        if candidates.size == 0:
            raise InputError(f"class {c} gets no pseudo-labelled row: {n} unlabelled rows are too few for {C} classes")
        top = candidates[np.argsort(-probs[candidates, c], kind="stable")[:k]]
        free[top] = False
        rows.append(top)
        out.append(np.full(top.size, c))
    return np.concatenate(rows), np.concatenate(out), empty


def check_rounds(rounds: int, k_per_class: int, min_confidence: float | None) -> None:
    """Refuse rounds < 1, k_per_class < 1 or a confidence threshold outside [0, 1]."""
    if int(rounds) < 1 or int(k_per_class) < 1:
        raise InputError(f"rounds and k_per_class must be >= 1, got rounds={rounds}, k_per_class={k_per_class}")
    if min_confidence is not None and not 0.0 <= float(min_confidence) <= 1.0:
        raise InputError(f"min_confidence must be in [0, 1], got {min_confidence}")


@dataclass
class Rounds:
    """What the rounds did: rows of the last round, per later round the share of all rows whose
    pseudo-label (argmax) changed, and the classes filled from free rows in some round."""

    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    changed: list[float] = field(default_factory=list)
    filled: list[int] = field(default_factory=list)


def run_rounds(probs: np.ndarray, fit: Callable[[np.ndarray, np.ndarray], np.ndarray], rounds: int, k: int,
               min_confidence: float | None = None) -> Rounds:
    """``rounds`` rounds of: pseudo-label rows from ``probs`` (the module's rule), ``fit(rows,
    labels)`` a head on them, which returns the next round's class probabilities of all rows.
    ``probs``: round 1's (zero-shot) probabilities."""
    done = Rounds()
    filled: set[int] = set()
    previous = None
    for _ in range(int(rounds)):
        current = probs.argmax(axis=1)
        if previous is not None:
            done.changed.append(float(np.mean(current != previous)))
        previous = current
        done.rows, labels, empty = pseudo_label_rows(probs, int(k), min_confidence)
        filled.update(empty)
        probs = fit(done.rows, labels)
    done.filled = sorted(filled)
    return done


def filled_message(filled: list[int], k: int) -> str:
    """The warning of classes that were no kept row's pseudo-label in some round."""
    return (f"{len(filled)} class(es) had no confident pseudo-labelled row in some round; each took its {k} "
            f"most probable rows not kept by another class (classes {filled[:10]})")

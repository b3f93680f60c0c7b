"""The few-shot class-incremental (FSCIL) protocol on stored features, with GDA.partial_fit.

As in CPE-CLIP and the FSCIL benchmarks (CIFAR-100: 60 base classes then 8 sessions of 5-way
5-shot; miniImageNet; CUB-200): the base session trains on every training row of the base
classes, each later session adds N new classes with K rows each, and after every session the
model is scored on the test rows of all classes seen so far. The table reports each session's
accuracy, their average and the performance drop (first session's accuracy minus the last's).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from solvers.errors import InputError
from solvers.model_selection.fewshot import fewshot_split


def class_order(sessions: Sequence[Sequence[int]], n_classes: int) -> np.ndarray:
    """The class ids of all sessions in order; refuses repeats and ids outside [0, n_classes)."""
    order = np.array([int(c) for session in sessions for c in session], np.int64)
    if order.size == 0:
        raise InputError("the sessions name no class")
    if len(set(order.tolist())) != order.size:
        raise InputError("a class is named in more than one session (or twice in one)")
    if order.min() < 0 or order.max() >= n_classes:
        raise InputError(f"session class ids must lie in [0, {n_classes})")
    return order


def fscil_table(make_model: Callable[[np.ndarray], Any], X_train: np.ndarray, y_train: np.ndarray,
                X_test: np.ndarray, y_test: np.ndarray, sessions: Sequence[Sequence[int]],
                shots: int | None, seed: int = 1, base_shots: int | None = None) -> dict[str, Any]:
    """Run the protocol: ``sessions[0]`` is the base session, the others the incremental ones.

    ``make_model(order)`` returns an unfitted model with ``partial_fit`` whose classes are
    ``order`` (original class ids, in session order; e.g. GDA with the text weights ``T[order]``).
    Labels are re-indexed so that class ``order[i]`` is label ``i``. ``shots`` rows per new class
    are sampled with ``seed`` (all rows when None); ``base_shots`` likewise for the base session.
    Returns {"sessions": [{"session", "classes", "new_rows", "accuracy"}], "average", "drop"}.
    """
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    order = class_order(sessions, n_classes)
    new_label = np.full(n_classes, -1, np.int64)
    new_label[order] = np.arange(order.size)
    ytr, yte = new_label[y_train], new_label[y_test]
    model = make_model(order)
    rows_out, seen = [], 0
    for index, session in enumerate(sessions):
        lo, hi = seen, seen + len(session)
        rows = np.flatnonzero((ytr >= lo) & (ytr < hi))
        k = base_shots if index == 0 else shots
        if k is not None:
            rows = rows[fewshot_split(ytr[rows], k, seed)]
        if rows.size == 0:
            raise InputError(f"session {index} has no training rows")
        model.partial_fit(X_train[rows], ytr[rows])
        seen = hi
        test = np.flatnonzero((yte >= 0) & (yte < seen))
        if test.size == 0:
            raise InputError(f"no test rows of the {seen} classes seen after session {index}")
        accuracy = float(np.mean(model.predict(X_test[test]) == yte[test]))
        rows_out.append({"session": index, "classes": seen, "new_rows": int(rows.size), "accuracy": accuracy})
    accuracies = [r["accuracy"] for r in rows_out]
    return {"sessions": rows_out, "average": float(np.mean(accuracies)),
            "drop": float(accuracies[0] - accuracies[-1])}

"""What ``fs anomaly`` reads from a store: the features of the split to score with their ground
truth (a row is normal when its class is the normal class, e.g. MVTec's "good"), and optionally a
few-shot memory of normal rows from another split."""
from __future__ import annotations

from typing import Any

import numpy as np

from featurestore.errors import NotFoundError
from featurestore.store.feature_store import FeatureStore


def _class_rows(store: FeatureStore, split: str, normal_class: str) -> tuple[np.ndarray, int]:
    """(labels of the valid rows, index of ``normal_class`` in the split's classes)."""
    classes = store.classes(split)
    y = store.labels(split)
    if classes is None or (y < 0).any():
        raise NotFoundError(f"split {split!r} has unlabelled rows: the ground truth is each row's class "
                            f"({normal_class!r} = normal, any other = anomalous)")
    if normal_class not in classes:
        raise NotFoundError(f"split {split!r} has no class {normal_class!r} (its classes: {', '.join(classes)}); "
                            "name the normal class with --normal-class")
    return y, classes.index(normal_class)


def anomaly_inputs(store: FeatureStore, encoder: str, split: str, normal_class: str,
                   normal_split: str | None = None, shots: int | None = None,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    """(features of ``split``, is_anomalous, normal memory or None, what was used).

    The memory is ``shots`` rows (seeded sample) of ``normal_split`` whose class is
    ``normal_class``, or of all its rows when that split is unlabelled (a folder of normal images).
    """
    if split not in store.splits():
        raise NotFoundError(f"no split {split!r} in {store.path} (it has: {', '.join(store.splits())})")
    y, normal = _class_rows(store, split, normal_class)
    X = store.features(encoder, split)
    used: dict[str, Any] = {"split": split, "normal_class": normal_class, "normal_split": normal_split,
                            "shots": None}
    memory = None
    if normal_split is not None:
        if normal_split == split:
            raise NotFoundError("--normal-split is the scored split: the memory would contain the test images")
        if normal_split not in store.splits():
            raise NotFoundError(f"no split {normal_split!r} in {store.path} (it has: {', '.join(store.splits())})")
        pool = store.features(encoder, normal_split)
        labels, classes = store.labels(normal_split), store.classes(normal_split)
        if classes is not None and (labels >= 0).all():
            if normal_class not in classes:
                raise NotFoundError(f"split {normal_split!r} has no class {normal_class!r} for the normal memory")
            pool = pool[labels == classes.index(normal_class)]
        if shots is not None:
            if shots > len(pool):
                raise NotFoundError(f"--shots {shots} but split {normal_split!r} has only {len(pool)} normal rows")
            pool = pool[np.sort(np.random.default_rng(seed).choice(len(pool), shots, replace=False))]
        memory = pool
        used["shots"] = len(pool)
    return X, y != normal, memory, used

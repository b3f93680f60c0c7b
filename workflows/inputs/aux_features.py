"""Features of a split from two encoders of one store, side by side: the CLIP encoder's followed by
an auxiliary image encoder's (DINO-style, e.g. a timm tower extracted over the same split).

Solvers that use a second encoder (``solvers.few_shot.amu.AMU``, ``solvers.unlabelled.label_free.LabelFree``) take
one array per row, ``[X_clip | X_aux]``; the CLIP width is their text weights' width. Rows of a
split are the same for every encoder (features are row-aligned with the split's ids), so the two
arrays are joined column-wise.
"""
from __future__ import annotations

import numpy as np

from featurestore.errors import NotFoundError
from featurestore.store.feature_store import FeatureStore
from workflows.inputs import solver_inputs


def check_aux_encoder(store: FeatureStore, encoder: str, aux_encoder: str) -> str:
    """``aux_encoder`` if it is another encoder of the store; a NotFoundError naming the choices otherwise."""
    if aux_encoder == encoder:
        raise NotFoundError(f"--aux-encoder {aux_encoder!r} is the main encoder; name another encoder of the store")
    if aux_encoder not in store.encoders():
        others = [e for e in store.encoders() if e != encoder]
        raise NotFoundError(f"no encoder {aux_encoder!r} in {store.path} "
                            f"(other encoders: {', '.join(others) or 'none'})")
    return aux_encoder


def _aux(store: FeatureStore, aux_encoder: str, split: str) -> np.ndarray:
    if not store.has_features(aux_encoder, split):
        raise NotFoundError(f"split {split!r} has no features of auxiliary encoder {aux_encoder!r}; "
                            f"run fs extract --split {split} with it")
    return store.features(aux_encoder, split)


def paired_features(store: FeatureStore, encoder: str, aux_encoder: str | None, split: str) -> np.ndarray:
    """(N, D_clip + D_aux) features of the split's valid rows; the CLIP features alone without aux."""
    X = store.features(encoder, split)
    if aux_encoder is None:
        return X
    return np.hstack([X, _aux(store, aux_encoder, split)])


def paired_labelled(store: FeatureStore, encoder: str, aux_encoder: str | None, split: str,
                    classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``solver_inputs.labelled`` with the auxiliary encoder's columns appended."""
    if aux_encoder is None:
        return solver_inputs.labelled(store, encoder, split, classes=classes)
    X = paired_features(store, encoder, aux_encoder, split)
    y = solver_inputs.split_labels(store, split, classes)
    keep = y >= 0
    if not keep.any():
        raise NotFoundError(f"split {split!r} has no labelled rows")
    return X[keep], y[keep]

"""Features of a split from two encoders of one store, side by side: the CLIP encoder's followed by
an auxiliary image encoder's (DINO-style, e.g. a timm tower extracted over the same split).

Solvers that use a second encoder (``solvers.AMU``, ``solvers.LabelFree``) take one array per
row, ``[X_clip | X_aux]``; the CLIP width is their text weights' width. Rows of a split are the
same for every encoder (features are row-aligned with the split's ids), so the two arrays are
joined column-wise. A saved model records its auxiliary encoder (``aux_encoder_``); the
``model_*`` readers build the same rows for it, so ``fs predict`` and ``fs eval`` use it as fitted.
"""
from __future__ import annotations

from collections.abc import Iterator

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


def model_aux_encoder(solver: object) -> str | None:
    """The auxiliary encoder a loaded model was fitted with (``aux_encoder_``), or None."""
    return getattr(solver, "aux_encoder_", None)


def model_labelled(store: FeatureStore, solver: object, encoder: str, split: str,
                   classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A split's labelled rows as ``solver`` was fitted on them: the CLIP encoder's features,
    followed by its auxiliary encoder's when it records one (``fs eval`` of a saved AMU)."""
    aux_encoder = model_aux_encoder(solver)
    if aux_encoder is not None:
        check_aux_encoder(store, encoder, aux_encoder)
    return paired_labelled(store, encoder, aux_encoder, split, classes)


def model_feature_chunks(store: FeatureStore, solver: object, encoder: str, split: str,
                         chunk_rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``store.iter_features`` chunks of a split as ``solver`` takes them: with its auxiliary
    encoder's columns appended when it records one (``fs predict`` of a saved AMU). Both
    encoders hold every valid row of the split, so their chunks cover the same rows."""
    chunks = store.iter_features(encoder, split, chunk_rows=chunk_rows)
    aux_encoder = model_aux_encoder(solver)
    if aux_encoder is None:
        yield from chunks
        return
    check_aux_encoder(store, encoder, aux_encoder)
    if not store.has_features(aux_encoder, split):
        _aux(store, aux_encoder, split)  # raises the NotFoundError naming the extraction to run
    aux_chunks = store.iter_features(aux_encoder, split, chunk_rows=chunk_rows)
    for (positions, X), (aux_positions, A) in zip(chunks, aux_chunks, strict=True):
        if not np.array_equal(positions, aux_positions):
            raise NotFoundError(f"encoders {encoder!r} and {aux_encoder!r} hold different rows of split {split!r}")
        yield positions, np.hstack([X, A])

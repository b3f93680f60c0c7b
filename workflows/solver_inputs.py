"""Reading what solvers need from a store: labelled features of a split, the zero-shot text
weights that go with them, and saved models by name. Composition only; the math is in solvers/."""
from __future__ import annotations

from typing import Any

import numpy as np

from featurestore.errors import NotFoundError
from featurestore.store import FeatureStore
from featurestore.textbanks import find_class_bank


def labelled(store: FeatureStore, encoder: str, split: str,
             average_views: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the valid, labelled rows of a split; with ``average_views``, each
    feature is averaged with its stored augmented views (``fs extract --views N``)."""
    X, y = store.features(encoder, split), store.labels(split)
    if average_views:
        from solvers.augmented_views import average_views as mean_over_views

        X = mean_over_views(X, store.views(encoder, split))
    keep = y >= 0
    if not keep.any():
        raise NotFoundError(f"split {split!r} has no labelled rows")
    return X[keep], y[keep]


def text_weights(store: FeatureStore, encoder: str, bank: str | None, split: str | None) -> tuple[np.ndarray | None, str | None]:
    """The (C, D) zero-shot weights of ``bank``, or of the class bank matching ``split``'s classes."""
    if bank is None and split is not None:
        bank = find_class_bank(store, encoder, store.classes(split))
    if bank is None:
        return None, None
    return store.text(encoder, bank), bank


def class_names(store: FeatureStore, split: str, bank: str | None, encoder: str | None) -> list[str] | None:
    """Class names for display: the split's, else the text bank's."""
    names = store.classes(split)
    if names is None and bank and encoder:
        names = store.text_bank(encoder, bank).get("classes")
    return names


def load_model(store: FeatureStore, name: str, encoder: str | None, bank: str | None,
               split: str) -> tuple[Any, str, str | None]:
    """A saved solver by name, or ``zeroshot`` built from a text bank. Returns (solver, encoder, bank)."""
    from solvers.persistence import check_encoder, load_from_store

    if name in store.models():
        solver = load_from_store(store, name)
        key = encoder or solver.encoder_
        if key is None:
            raise NotFoundError(f"model {name!r} records no encoder; give --encoder")
        check_encoder(solver, key)
        return solver, key, bank
    if name == "zeroshot":
        from solvers.zeroshot import ZeroShot

        if encoder is None:
            encoders = store.encoders()
            if len(encoders) != 1:
                raise NotFoundError(f"zeroshot needs --encoder (the store has: {', '.join(encoders) or 'none'})")
            encoder = encoders[0]
        weights, bank = text_weights(store, encoder, bank, split)
        if weights is None:
            raise NotFoundError(f"no class text bank matches split {split!r}; run fs text or give --text")
        return ZeroShot(text_weights=weights).fit(), encoder, bank
    raise NotFoundError(f"no model {name!r} in {store.path} (it has: {', '.join(store.models()) or 'none'}; "
                        "or use zeroshot)")

"""Reading what solvers need from a store: labelled features of a split (labels mapped through
class names onto the class list a model uses), the zero-shot text weights that go with them, the
store's encoder when none is named, and saved models by name. Composition only; the math is in
solvers/."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from featurestore.errors import NotFoundError, ProvenanceError
from featurestore.store.feature_store import FeatureStore
from featurestore.text.banks import find_class_bank
from solvers.errors import InputError
from workflows.inputs.stored_rows import StoredRows

if TYPE_CHECKING:
    from solvers import Solver


def resolve_encoder(store: FeatureStore, encoder: str | None) -> str:
    """``encoder``, or the store's only encoder when none is given (an error naming the
    candidates when there are several or none)."""
    if encoder is not None:
        store.encoder_info(encoder)
        return encoder
    encoders = store.encoders()
    if len(encoders) != 1:
        has = "no encoder" if not encoders else "several: " + ", ".join(encoders)
        raise NotFoundError(f"give --encoder (the store has {has})")
    return encoders[0]


def class_mapping(split_classes: list[str] | None, reference: list[str] | None, split: str,
                  used: np.ndarray | None = None) -> np.ndarray | None:
    """For each class index of ``split``, its index in ``reference`` (-1 for a class no row has;
    None when no mapping is needed). A class of ``split`` that rows carry (``used``: the label
    values present, default all) but the reference lacks is refused: no label can be given to it
    (an empty class folder is not)."""
    if reference is None or split_classes is None or list(split_classes) == list(reference):
        return None
    position = {name: i for i, name in enumerate(reference)}
    carried = set(range(len(split_classes))) if used is None else {int(c) for c in used}
    unknown = [name for c, name in enumerate(split_classes) if name not in position and c in carried]
    if unknown:
        raise NotFoundError(f"split {split!r} has class(es) {', '.join(repr(n) for n in unknown[:5])} that the "
                            f"model's classes ({', '.join(reference[:8])}{' ...' if len(reference) > 8 else ''}) "
                            "do not include")
    return np.array([position.get(name, -1) for name in split_classes], dtype=np.int64)


def split_labels(store: FeatureStore, split: str, classes: list[str] | None = None,
                 valid_only: bool = True) -> np.ndarray:
    """Labels of ``split`` (-1 where a row has none), as indices into ``classes`` when given
    (mapped through the class names). Labels outside the split's own class list are refused."""
    y = store.labels(split, valid_only=valid_only)
    own = store.classes(split)
    if own is not None and y.size and y.max() >= len(own):
        raise NotFoundError(f"split {split!r} has label {int(y.max())} but only {len(own)} classes; "
                            "its labels do not index its class list")
    mapping = class_mapping(own, classes, split, used=None if own is None else np.flatnonzero(np.bincount(y[y >= 0])))
    if mapping is None:
        return y
    return np.where(y >= 0, mapping[np.clip(y, 0, None)], -1)


def labelled(store: FeatureStore, encoder: str, split: str,
             classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the valid, labelled rows of a split; labels index ``classes`` when
    given (e.g. the training split's class list)."""
    X, y = store.features(encoder, split), split_labels(store, split, classes)
    keep = y >= 0
    if not keep.any():
        raise NotFoundError(f"split {split!r} has no labelled rows")
    if keep.all():  # no copy of a split whose rows are all labelled (a 50,000-row test split: 200 MB)
        return X, y
    return X[keep], y[keep]


def stored_labelled(store: FeatureStore, encoder: str, split: str,
                    classes: list[str] | None = None) -> tuple[StoredRows, np.ndarray]:
    """``labelled`` with the features left in the store: rows read by index when a run draws them
    (``StoredRows``), the labels read now."""
    y = split_labels(store, split, classes)
    keep = y >= 0
    if not keep.any():
        raise NotFoundError(f"split {split!r} has no labelled rows")
    width = store.features_at(encoder, split, np.zeros(0, dtype=np.int64)).shape[1]
    return StoredRows(os.path.abspath(store.path), encoder, split, np.flatnonzero(keep), width), y[keep]


def labelled_views(store: FeatureStore, encoder: str, split: str,
                   classes: list[str] | None = None) -> np.ndarray:
    """The stored augmented views (N, V, D) of the rows ``labelled`` returns, in the same order
    (``fs extract --views V``); ``solvers.model_selection.augmented_views`` turns them into a training set."""
    views, y = store.views(encoder, split), split_labels(store, split, classes)
    return views[y >= 0]


def text_weights(store: FeatureStore, encoder: str, bank: str | None,
                 split: str | None) -> tuple[np.ndarray | None, str | None]:
    """The (C, D) zero-shot weights of ``bank``, or of the class bank whose classes are ``split``'s
    (else the only class bank holding all of them: a test folder may lack a class)."""
    if bank is None and split is not None:
        classes = store.classes(split)
        bank = find_class_bank(store, encoder, classes)
        if bank is None and classes:
            wider = [b for b in store.text_banks(encoder) if store.text_bank_kind(encoder, b) == "classes"
                     and set(classes) <= set(store.text_bank_field(encoder, b, "classes") or [])]
            bank = wider[0] if len(wider) == 1 else None
    if bank is None:
        return None, None
    return store.text(encoder, bank), bank


def model_classes(store: FeatureStore, encoder: str, bank: str | None, split: str | None) -> list[str] | None:
    """The class list of a model fitted with ``bank``'s text weights: the bank's own classes, in
    the order of its rows (weight row k is class k), else ``split``'s class list. Labels of every
    split are mapped onto it by name (``labelled(..., classes=...)``), so a bank whose classes
    are in another order than a split's (``--bank``, or a wider bank) still pairs row k of the
    weights with class k of the labels; a solver's ``classes_`` are indices into it."""
    if bank is not None:
        names = store.text_bank_field(encoder, bank, "classes")
        if names is not None and len(names):
            return [str(n) for n in names]
    return store.classes(split) if split else None


def solver_class_params(cls: type[Solver], classes: list[str] | None, uses_text: bool) -> dict[str, Any]:
    """Constructor arguments that make a solver's ``classes_`` the indices 0..C-1 of ``classes``
    (the labels ``labelled`` returns). A solver with text weights has them already (one class per
    bank row); one without is given ``classes=range(C)``, so a class with no training rows is a
    named error (or, for kNN, a class without votes), never a silently missing column."""
    if uses_text or classes is None or "classes" not in cls._get_param_names():
        return {}
    return {"classes": np.arange(len(classes))}


def class_names(store: FeatureStore, split: str, bank: str | None, encoder: str | None,
                solver: Any = None) -> list[str] | None:
    """Class names for display: the model's own (recorded when it was saved), else the split's,
    else the text bank's."""
    names = getattr(solver, "class_names_", None)
    if names is None:
        names = store.classes(split)
    if names is None and bank and encoder:
        names = store.text_bank(encoder, bank).get("classes")
    return names


def check_encoder(solver: Any, encoder_key: str) -> None:
    """Refuse a solver fitted on features of an encoder other than ``encoder_key`` (a solver with
    no recorded encoder passes)."""
    recorded = getattr(solver, "encoder_", None)
    if recorded is not None and recorded != encoder_key:
        raise ProvenanceError(f"{type(solver).__name__} was fitted on features of encoder "
                              f"{recorded!r}, not {encoder_key!r}; refit it on {encoder_key!r} features")


def load_model(store: FeatureStore, name: str, encoder: str | None, bank: str | None,
               split: str | None) -> tuple[Any, str, str | None]:
    """A saved solver by name, or ``zero-shot`` built from a text bank. Returns (solver, encoder, bank).

    ``zero-shot`` uses ``encoder``, else the store's only encoder; its class names are the text
    bank's, so labels of any split map onto them."""
    from solvers.persistence import load_from_store

    if name in store.models():
        from solvers.ensembles.ensemble import MemberCycleError

        try:
            solver = load_from_store(store, name)
        except MemberCycleError as exc:
            raise InputError(f"model {name!r}: {exc}") from None
        key = encoder or solver.encoder_
        if key is None:
            raise NotFoundError(f"model {name!r} records no encoder; give --encoder")
        check_encoder(solver, key)
        return solver, key, bank
    if name == "zero-shot":
        from solvers.zero_shot.zero_shot import ZeroShot

        encoder = resolve_encoder(store, encoder)
        weights, bank = text_weights(store, encoder, bank, split)
        if weights is None or bank is None:
            where = f"split {split!r}" if split else "no split (give --bank BANK)"
            raise NotFoundError(f"no class text bank matches {where}; run fs text or give --bank")
        solver = ZeroShot(text_weights=weights).fit()
        names = store.text_bank_field(encoder, bank, "classes")
        solver.class_names_ = None if names is None else [str(n) for n in names]
        return solver, encoder, bank
    raise NotFoundError(f"no model {name!r} in {store.path} (it has: {', '.join(store.models()) or 'none'}; "
                        "or use zero-shot)")


def store_encoder(path: str, encoder: str | None) -> str:
    """``encoder``, or the only encoder of the store at ``path`` (opened briefly to read it)."""
    if encoder is not None:
        return encoder
    with FeatureStore(path) as reader:
        return resolve_encoder(reader, None)

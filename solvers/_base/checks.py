"""Input validation shared by the solvers: every problem a caller can cause is an InputError
(solvers.errors, a ValueError) that names it (wrong rank, non-finite values, mismatched
dimensions, labels outside the classes, empty classes), worded as scikit-learn words it where
its estimator checks look for the wording. Labels may be any sortable hashable values (strings,
non-contiguous integers): ``resolve_classes`` gives a solver its ``classes_`` and
``encode_labels`` maps labels onto indices into them. No scikit-learn import here."""
from __future__ import annotations

import warnings

import numpy as np

from solvers._base.estimator_protocol import data_conversion_warning
from solvers.errors import InputError, InputTypeError


def _is_sparse(X: object) -> bool:
    return type(X).__module__.startswith("scipy.sparse")


def check_features(X: object, name: str = "X", n_features: int | None = None,
                   other: str = "text_weights", estimator: object = None) -> np.ndarray:
    """Return ``X`` (array, list, DataFrame) as a 2-D finite float array (float16, integers,
    booleans and numeric object arrays become float32 / float64).

    ``n_features`` is the dimension the features must have; ``other`` names where it comes from,
    so a mismatch reads e.g. "X has 512 features but text_weights has 768". With ``estimator``
    (a fitted model checking its input) it reads as scikit-learn's: "X has 512 features, but GDA
    is expecting 768 features as input".
    """
    if X is None:
        raise InputError(f"{name} is required but None was given")
    if _is_sparse(X):
        raise InputError(f"{name} is a sparse matrix; sparse input is not supported (densify it with .toarray())")
    arr = np.asarray(X)
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise InputTypeError(f"{name} must be a numeric array: {error}") from None
    if np.iscomplexobj(arr):
        raise InputError(f"Complex data not supported: {name} has dtype {arr.dtype}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise InputError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        hint = (": Reshape your data with X.reshape(1, -1) for a single sample or X.reshape(-1, 1) for a "
                "single feature") if arr.ndim == 1 else ""
        raise InputError(f"{name} must be a 2-D array (n_samples, n_features), got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise InputError(f"{name} has no rows: 0 sample(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if arr.shape[1] == 0:
        raise InputError(f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise InputError(f"{name} contains NaN or infinite values in {bad} row(s)")
    if n_features is not None and arr.shape[1] != n_features:
        if estimator is not None:
            raise InputError(f"{name} has {arr.shape[1]} features, but {type(estimator).__name__} is expecting "
                             f"{n_features} features as input")
        raise InputError(f"{name} has {arr.shape[1]} features but {other} has {n_features}")
    return arr


def check_target(y: object, n_samples: int, name: str = "y", owner: str = "this solver") -> np.ndarray:
    """Return class labels ``y`` (array, list, Series; integers, strings or any sortable hashable
    values) as a 1-D array of ``n_samples`` values. Refused as scikit-learn refuses them: None
    ("requires y"), a continuous or multi-output target ("Unknown label type"), NaN, complex
    values; a column vector is flattened with a DataConversionWarning."""
    if y is None:
        raise InputError(f"{owner} requires y to be passed, but the target y is None")
    if _is_sparse(y):
        raise InputError(f"{name} is a sparse matrix; sparse labels are not supported")
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the shape "
                      "of y to (n_samples, ), for example using ravel().", data_conversion_warning(), stacklevel=3)
        arr = arr.ravel()
    if arr.ndim != 1:
        raise InputError(f"Unknown label type: {name} has shape {arr.shape}; y should be a 1d array of class "
                         "labels (multi-output targets are not supported)")
    if arr.shape[0] != n_samples:
        raise InputError(f"{name} has {arr.shape[0]} labels but X has {n_samples} rows")
    if np.iscomplexobj(arr):
        raise InputError(f"Complex data not supported: {name} has dtype {arr.dtype}")
    values = arr
    if arr.dtype == object:
        numbers = [v for v in arr.tolist() if isinstance(v, (float, np.floating))]
        values = np.asarray(numbers, dtype=np.float64)
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)):
            raise InputError(f"Input {name} contains NaN or infinity: class labels must be finite")
        if not np.all(values == np.round(values)):
            raise InputError(f"Unknown label type: continuous. {name} holds non-integer numbers; a classifier "
                             "needs class labels, not regression targets")
    return arr


def resolve_classes(classes: object, n_classes: int | None = None, text_rows: int | None = None,
                    y: np.ndarray | None = None) -> np.ndarray:
    """A solver's ``classes_``: ``classes`` when given (distinct labels, one per text-bank row when
    there is a text bank: its order is the bank's), else range(text_rows) with a text bank, else
    range(n_classes), else the sorted distinct labels of ``y``."""
    if classes is not None:
        out = np.asarray(classes)
        if out.ndim != 1 or out.size == 0:
            raise InputError(f"classes must be a non-empty 1-D list of labels, got shape {out.shape}")
        try:
            distinct = np.unique(out).size
        except TypeError:
            raise InputError("classes must be sortable labels of one kind (all strings or all numbers)") from None
        if distinct != out.size:
            raise InputError(f"classes has {out.size - distinct} repeated label(s)")
        if text_rows is not None and out.size != text_rows:
            raise InputError(f"classes has {out.size} labels but text_weights has {text_rows} rows "
                             "(one label per text-bank row, in the bank's order)")
        if n_classes is not None and out.size != int(n_classes):
            raise InputError(f"classes has {out.size} labels but n_classes is {n_classes}")
        return out
    if text_rows is not None:
        if n_classes is not None and int(n_classes) != text_rows:
            raise InputError(f"n_classes={n_classes} but text_weights has {text_rows} rows")
        return np.arange(text_rows)
    if n_classes is not None:
        if int(n_classes) < 1:
            raise InputError(f"n_classes must be >= 1, got {n_classes}")
        return np.arange(int(n_classes))
    if y is None:
        raise InputError("cannot tell the classes: give text_weights, classes, n_classes or labels")
    try:
        return np.unique(y)
    except TypeError:
        raise InputError("Unknown label type: the labels mix kinds (e.g. strings and numbers) and cannot be "
                         "sorted") from None


def encode_labels(y: np.ndarray, classes: np.ndarray, name: str = "y") -> np.ndarray:
    """Indices into ``classes`` (int64) of the labels ``y``; a label not in ``classes`` is refused,
    naming it."""
    classes = np.asarray(classes)
    y = np.asarray(y)
    order = np.argsort(classes, kind="stable")
    ordered = classes[order]
    try:
        position = np.clip(np.searchsorted(ordered, y), 0, ordered.size - 1)
        found = ordered[position] == y
    except (TypeError, ValueError):
        found, position = np.zeros(y.shape, bool), np.zeros(y.shape, np.int64)
    found = np.asarray(found, bool)
    if not found.all():
        unknown = list(dict.fromkeys(y[~found].tolist()))
        shown = ", ".join(repr(v) for v in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        listed = ", ".join(repr(v) for v in classes[:8].tolist()) + (" ..." if classes.size > 8 else "")
        raise InputError(f"{name} has label(s) {shown} not among the {classes.size} classes ({listed})")
    return order[position].astype(np.int64)


def check_text_weights(text_weights: object) -> np.ndarray:
    """Return class text embeddings as a finite (C, D) float array."""
    return check_features(text_weights, name="text_weights")


def check_labels(y: object, n_samples: int, n_classes: int | None = None,
                 name: str = "y") -> np.ndarray:
    """Return ``y`` as an int64 vector of length ``n_samples`` with values in [0, n_classes)."""
    if y is None:
        raise InputError(f"{name} is required but None was given")
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D label vector, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise InputError(f"{name} has {arr.shape[0]} labels but X has {n_samples} rows")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InputError(f"{name} must hold integer class indices, got non-integer values")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise InputError(f"{name} has negative label {int(arr.min())}; labels must be in [0, n_classes)")
    if n_classes is not None and arr.size and arr.max() >= n_classes:
        raise InputError(f"{name} has label {int(arr.max())} but there are only {n_classes} classes "
                         f"(labels must be in [0, {n_classes}))")
    return arr


def check_class_counts(y: np.ndarray, n_classes: int, minimum: int = 1,
                       classes: np.ndarray | None = None) -> np.ndarray:
    """Return per-class counts of the class indices ``y``; raise if any class has fewer than
    ``minimum`` samples, naming the classes (their labels, when ``classes`` is given)."""
    counts = np.bincount(y, minlength=n_classes)
    short = np.flatnonzero(counts < minimum)
    if short.size:
        names = short if classes is None else np.asarray(classes)[short]
        shown = ", ".join(str(c) for c in names[:10].tolist()) + (" ..." if short.size > 10 else "")
        raise InputError(f"{short.size} class(es) have fewer than {minimum} training sample(s): "
                         f"class {shown}")
    return counts


def check_validation_pair(X_val: object, y_val: object, n_features: int,
                          classes: int | np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Validate an optional validation split; both or neither of X_val, y_val must be given.
    ``classes`` is the model's ``classes_`` (labels are mapped to indices into it) or a class
    count C (labels must then be indices 0..C-1). Returns (features, class indices)."""
    if X_val is None and y_val is None:
        return None
    if X_val is None or y_val is None:
        raise InputError("give both X_val and y_val, or neither")
    Xv = check_features(X_val, name="X_val", n_features=n_features, other="X")
    if isinstance(classes, (int, np.integer)):
        return Xv, check_labels(y_val, Xv.shape[0], int(classes), name="y_val")
    yv = encode_labels(check_target(y_val, Xv.shape[0], name="y_val"), classes, name="y_val")
    return Xv, yv

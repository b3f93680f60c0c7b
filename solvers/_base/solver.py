"""The solver base class: scikit-learn estimator conventions plus a flat, file-friendly state.

Every solver produces (n, C) logits with ``class_logits``; scikit-learn's ``decision_function``,
probabilities, predictions (labels from ``classes_``) and accuracy follow from them here.
``get_state``/``from_state`` turn a fitted solver into plain arrays plus
JSON-able params so it can be saved in a store or an .npz file without pickling.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from solvers._base.checks import check_target, encode_labels, resolve_classes
from solvers._base.estimator_protocol import ClassifierProtocol, not_fitted_error
from solvers._base.softmax import softmax
from solvers.errors import InputError

STATE_FORMAT_VERSION = 1


def _to_json(value: Any) -> Any:
    """Convert NumPy scalars and tuples to plain JSON types."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value


def _is_text_like(value: object) -> bool:
    """Arrays a store cannot hold as numbers (strings, objects): they are saved as JSON lists."""
    return isinstance(value, np.ndarray) and value.dtype.kind not in "biuf"


def classes_to_state(classes: np.ndarray, arrays: dict[str, np.ndarray], fitted: dict[str, Any]) -> None:
    """Put ``classes_`` in ``arrays`` when numeric, else in ``fitted`` as a JSON list (an HDF5
    store holds no NumPy unicode arrays and the format stays pickle-free)."""
    classes = np.asarray(classes)
    if _is_text_like(classes):
        fitted["classes_"] = _to_json(classes.tolist())
    else:
        arrays["classes_"] = classes


def classes_from_state(arrays: dict[str, np.ndarray], fitted: dict[str, Any]) -> np.ndarray | None:
    """The ``classes_`` saved by ``classes_to_state`` (None when neither place has them)."""
    if "classes_" in arrays:
        return np.asarray(arrays["classes_"])
    if "classes_" in fitted:
        return np.asarray(fitted["classes_"])
    return None


class Solver(ClassifierProtocol):
    """Base of all solvers: subclasses implement ``fit`` and ``class_logits`` ((n, C), one column per
    entry of ``classes_``).

    One contract for every solver: ``predict_proba`` is softmax(logits / temperature) and
    ``predict`` the label of ``classes_`` with the largest logit (a solver whose natural output
    is a probability, such as kNN's vote shares, returns its clipped log as logits), so any
    solver's logits may be softmaxed. ``decision_function`` is scikit-learn's: the logits, except
    for two classes, where it is the margin logits[:, 1] - logits[:, 0] (positive means
    ``classes_[1]``), as scikit-learn's binary classifiers return.

    Labels: ``classes_`` holds the class labels (any sortable hashable values: strings,
    non-contiguous integers); ``fit`` maps labels onto them (``_fit_labels``). A solver with
    ``text_weights`` has one class per text-bank row, in the bank's order: its ``classes``
    constructor parameter names them (default range(C)) and labels must be among them. Without a
    text bank, ``classes_`` are the sorted distinct training labels (or ``classes`` /
    range(``n_classes``) when given, for a class with no rows in this fit).

    ``ClassifierProtocol`` makes it a scikit-learn classifier (clone, grid search, stratified CV,
    accuracy score, scikit-learn's estimator checks) without importing scikit-learn.
    Subclasses list the fitted attributes to persist in ``_state_arrays`` (arrays) and
    ``_state_scalars`` (JSON-able values); ``classes_`` and ``n_features_in_`` are always kept.
    """

    _state_arrays: tuple[str, ...] = ()
    _state_scalars: tuple[str, ...] = ()
    #: What ``fit`` needs, for generic callers such as ``fs solve``: "labels" (X, y),
    #: "unlabelled" (X only) or "none" (everything comes from the constructor).
    fit_input: str = "labels"
    #: Constructor parameters that carry data (embeddings, labels, prompt strings) rather than
    #: hyper-parameters: callers pass arrays (``workflows.inputs.arrays`` reads them from a
    #: store); ``fs solve --list`` does not offer them as ``--param`` options.
    _data_params: tuple[str, ...] = ("text_weights", "classes")

    # Fitted attributes every solver has (annotations only: ``hasattr`` is False before fit).
    classes_: np.ndarray
    n_features_in_: int
    #: Messages of the warnings the last fit raised (``fit_warnings.record_warning``).
    fit_warnings_: list[str]
    #: Set when a model is loaded from a store or file: its encoder key, the auxiliary encoder
    #: whose features followed it in each row (AMU, label-free), and its class names.
    encoder_: str | None
    aux_encoder_: str | None
    class_names_: list[str] | None

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits (n_samples, n_classes), column k for ``classes_[k]``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement class_logits")

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's decision function: the logits (n, C), or for two classes the margin
        logits[:, 1] - logits[:, 0] (n,), positive for ``classes_[1]``."""
        self._check_fitted()
        self._check_n_features(X)
        z = self.class_logits(X)
        return z[:, 1] - z[:, 0] if z.ndim == 2 and z.shape[1] == 2 else z

    def _required_text_weights(self) -> np.ndarray:
        """The ``text_weights`` parameter of a solver that needs a text bank (``fit`` checked it)."""
        weights = getattr(self, "text_weights", None)
        if weights is None:
            raise InputError(f"{type(self).__name__} needs text_weights (the class text embeddings)")
        return np.asarray(weights)

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise not_fitted_error(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _check_n_features(self, X: object) -> None:
        """scikit-learn's message for features of the wrong width (a cheap shape check; each
        solver validates the values itself)."""
        expected = getattr(self, "n_features_in_", 0)
        shape = getattr(X, "shape", None)
        if expected and shape is not None and len(shape) == 2 and shape[1] != expected:
            raise InputError(f"X has {shape[1]} features, but {type(self).__name__} is expecting "
                             f"{expected} features as input")

    def _set_classes(self, n_classes: int, n_features: int) -> None:
        """``classes_`` = the ``classes`` parameter (one label per class, in order) or range(C)."""
        self.classes_ = resolve_classes(getattr(self, "classes", None), None, n_classes)
        self.n_features_in_ = int(n_features)

    def _fit_labels(self, y: object, n_samples: int, text_rows: int | None = None) -> np.ndarray:
        """Check the training labels, set ``classes_`` (see the class doc) and return the labels
        as indices into it (int64)."""
        y = check_target(y, n_samples, owner=type(self).__name__)
        self.classes_ = resolve_classes(getattr(self, "classes", None), getattr(self, "n_classes", None),
                                        text_rows, y)
        return encode_labels(y, self.classes_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities softmax(logits / temperature), (n_samples, n_classes)."""
        self._check_fitted()
        self._check_n_features(X)
        return softmax(self.class_logits(X), getattr(self, "temperature", 1.0))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The label of ``classes_`` with the largest logit for each row (ties: the first)."""
        self._check_fitted()
        self._check_n_features(X)
        return np.asarray(self.classes_)[np.argmax(self.class_logits(X), axis=1)]

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Fitted state as (arrays, params): arrays hold array-valued constructor params
        (as ``param.<name>``) and fitted arrays; params is JSON-able (class name, constructor
        params, scalar fitted attributes, format version)."""
        self._check_fitted()
        arrays: dict[str, np.ndarray] = {}
        ctor: dict[str, Any] = {}
        for name, value in self.get_params(deep=False).items():
            if isinstance(value, np.ndarray) and not _is_text_like(value):
                arrays[f"param.{name}"] = value
            else:
                ctor[name] = _to_json(value.tolist() if isinstance(value, np.ndarray) else value)
        for name in self._state_arrays:
            arrays[name] = np.asarray(getattr(self, name))
        fitted = {name: _to_json(getattr(self, name))
                  for name in ("n_features_in_",) + tuple(self._state_scalars)}
        classes_to_state(self.classes_, arrays, fitted)
        params = {"class": type(self).__name__, "params": ctor, "fitted": fitted,
                  "state_format_version": STATE_FORMAT_VERSION}
        return arrays, params

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> Solver:
        """Rebuild a fitted solver from ``get_state`` output without refitting."""
        if params.get("class") != cls.__name__:
            raise InputError(f"state is for {params.get('class')!r}, not {cls.__name__}")
        missing = [name for name in cls._state_arrays if name not in arrays]
        if classes_from_state(arrays, params.get("fitted", {})) is None:
            missing.insert(0, "classes_")
        missing += [name for name in cls._state_scalars if name not in params.get("fitted", {})]
        if missing:
            raise InputError(f"the saved {cls.__name__} lacks {', '.join(missing)} (saved by another version?); "
                             "fit and save it again")
        ctor = dict(params["params"])
        accepted = set(cls._get_param_names())
        unknown = [key for key in ctor if key not in accepted]
        if unknown:
            raise InputError(f"the saved {cls.__name__} has parameter {unknown[0]!r}, which this version does not "
                             "know; fit and save it again")
        for key, value in arrays.items():
            if key.startswith("param."):
                ctor[key[len("param."):]] = np.asarray(value)
        solver = cls(**ctor)
        for key, value in arrays.items():
            if not key.startswith("param."):
                setattr(solver, key, np.asarray(value))
        for key, value in params["fitted"].items():
            setattr(solver, key, value)
        classes = classes_from_state(arrays, params["fitted"])
        assert classes is not None  # checked above
        solver.classes_ = classes
        solver._restore()
        return solver

    def _restore(self) -> None:
        """Hook for solvers that rebuild derived objects (e.g. an index) after ``from_state``."""

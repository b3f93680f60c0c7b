"""The scikit-learn estimator protocol without importing scikit-learn.

Importing scikit-learn would dominate a short run such as ``fs solve gda`` (bench/RESULTS.md,
"Measurements behind design choices"). Solvers therefore implement the protocol scikit-learn's
tools rely on — ``get_params``/``set_params`` from the constructor signature, classifier tags
(``__sklearn_tags__``, imported lazily: only scikit-learn itself calls it), accuracy ``score``
— so ``clone``, ``GridSearchCV``, ``cross_val_score`` and ``Pipeline`` work as with
``BaseEstimator`` + ``ClassifierMixin``.
"""
from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from solvers.errors import InputError


class NotFittedError(ValueError, AttributeError):
    """A solver was used before ``fit`` (same bases as scikit-learn's NotFittedError)."""


class DataConversionWarning(UserWarning):
    """Input was converted to the expected shape (a column-vector ``y``), as scikit-learn's."""


def _sklearn_loaded() -> bool:
    """Whether the caller imported scikit-learn (this package never does on its own)."""
    return "sklearn.exceptions" in sys.modules


def not_fitted_error(message: str) -> NotFittedError:
    """A NotFittedError; scikit-learn's too (``sklearn_twins``) when scikit-learn is loaded, so
    code that imported it can catch its own class."""
    if _sklearn_loaded():
        from solvers._base.sklearn_twins import NotFittedError as Twin

        return Twin(message)
    return NotFittedError(message)


def data_conversion_warning() -> type[DataConversionWarning]:
    """The DataConversionWarning class to warn with (scikit-learn's too, when loaded)."""
    if _sklearn_loaded():
        from solvers._base.sklearn_twins import DataConversionWarning as Twin

        return Twin
    return DataConversionWarning


class ClassifierProtocol:
    """Constructor-parameter introspection, tags and scoring of a scikit-learn classifier."""

    _estimator_type = "classifier"  # read by scikit-learn releases before 1.6
    predict: Callable[[np.ndarray], np.ndarray]  # what ``score`` compares (Solver.predict)

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """Constructor argument names, sorted (what get_params returns)."""
        init = cls.__init__
        if init is object.__init__:
            return []
        kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        return sorted(p.name for p in inspect.signature(init).parameters.values()
                      if p.name != "self" and p.kind not in kinds)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments as stored on the instance (nested ``a__b`` with ``deep``)."""
        params: dict[str, Any] = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                params.update((f"{name}__{key}", inner) for key, inner in value.get_params().items())
            params[name] = value
        return params

    def set_params(self, **params: Any) -> ClassifierProtocol:
        """Set constructor arguments (``a__b`` reaches into a nested estimator)."""
        valid = self._get_param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, delimiter, inner = key.partition("__")
            if name not in valid:
                raise InputError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {', '.join(valid)}")
            if delimiter:
                nested.setdefault(name, {})[inner] = value
            else:
                setattr(self, name, value)
        for name, inner_params in nested.items():
            getattr(self, name).set_params(**inner_params)
        return self

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        # a solver that fits without labels (zero-shot, unsupervised) does not require y
        required = getattr(self, "fit_input", "labels") == "labels"
        return Tags(estimator_type="classifier", target_tags=TargetTags(required=required),
                    classifier_tags=ClassifierTags(), input_tags=InputTags())

    def score(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        """Mean accuracy of ``predict(X)`` against ``y`` (weighted by ``sample_weight``)."""
        correct = (self.predict(X) == np.asarray(y)).astype(np.float64)
        return float(np.average(correct, weights=sample_weight))

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = []
        for name, value in self.get_params(deep=False).items():
            default = defaults.get(name, inspect.Parameter.empty)
            if isinstance(value, np.ndarray):
                shown.append(f"{name}=<array {value.shape}>")
            elif value is not default and not _equal(value, default):
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False

"""Zero-shot CLIP classification (Radford et al., "Learning Transferable Visual Models From
Natural Language Supervision", ICML 2021): cosine similarity to class text embeddings."""
from __future__ import annotations

import numpy as np

from solvers._base.checks import check_features, check_target, check_text_weights, encode_labels
from solvers._base.normalize import l2_normalize
from solvers._base.solver import Solver
from solvers.errors import InputError


def zero_shot_logits(X: np.ndarray, text_weights: np.ndarray, logit_scale: float = 100.0) -> np.ndarray:
    """logit_scale * X_n T_n^T with rows of X and T L2-normalized; computed in X's dtype."""
    T = l2_normalize(np.asarray(text_weights, dtype=np.float64)).astype(X.dtype)
    return (logit_scale * l2_normalize(X)) @ T.T


class ZeroShot(Solver):
    """Zero-shot classifier (Radford et al., ICML 2021): logits = logit_scale * x_n T_n^T.

    ``text_weights`` (C, D) are the class text embeddings (e.g. the mean over prompt templates);
    rows of both images and texts are L2-normalized. ``fit`` only validates: no labels needed.
    ``classes`` names the bank's rows (``classes_``, what ``predict`` returns; default range(C)).
    """

    fit_input = "none"

    def __init__(self, text_weights: np.ndarray | None = None, classes: list | np.ndarray | None = None,
                 logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        self.text_weights = text_weights
        self.classes = classes
        self.logit_scale = logit_scale
        self.temperature = temperature

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None,
            X_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> ZeroShot:
        """Validate text_weights, X's dimension and y's labels (among ``classes_``) when given;
        nothing is learned."""
        T = check_text_weights(self.text_weights)
        if X is not None:
            X = check_features(X, n_features=T.shape[1])
        self._set_classes(T.shape[0], T.shape[1])
        if y is not None:
            if X is None:
                raise InputError("y was given without X")
            encode_labels(check_target(y, X.shape[0], owner=type(self).__name__), self.classes_)
        return self

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """Zero-shot logits (n, C)."""
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_, estimator=self)
        return zero_shot_logits(X, self._required_text_weights(), self.logit_scale)

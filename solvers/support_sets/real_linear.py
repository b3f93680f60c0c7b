"""REAL-Linear (Parashar et al., "The Neglected Tails of Vision-Language Models", CVPR 2024;
official code github.com/shubhamprshr27/NeglectedTailsVLM, ``real-linear.py`` and
``clip_cross_modal.py``): a linear classifier fitted on pool images whose captions mention a
class's synonyms (no target labels), together with the REAL-Prompt prompt embeddings as extra
labelled samples (cross-modal), then averaged with the REAL-Prompt zero-shot head (WiSE-FT)."""
from __future__ import annotations

import numpy as np

from solvers._base.checks import (
    check_features,
    check_labels,
    check_text_weights,
    check_validation_pair,
)
from solvers._base.normalize import l2_normalize
from solvers._base.solver import Solver
from solvers.errors import InputError
from solvers.model_selection.validation import select_by_accuracy
from solvers.zero_shot.zero_shot import zero_shot_logits

C_GRID = tuple(10.0 ** e for e in range(-2, 5))


class RealLinear(Solver):
    """REAL-Linear (Parashar et al., CVPR 2024), the closed-form (L-BFGS) version.

    Training rows: retrieved pool features (label = the class whose synonyms their caption
    mentions) and the REAL-Prompt per-template prompt embeddings (label = their class), all
    L2-normalized. W = multinomial logistic regression without bias (scikit-learn, objective
    C sum CE(x W^T) + 1/2 ||W||^2), started from logit_scale * T. Logits (WiSE-FT with
    ``wise_alpha`` = 0.5 as the official code): (1 - a) logit_scale x_n T_n^T + a x_n W^T.
    C is chosen on (X_val, y_val) from ``Cs`` by accuracy of those logits, else ``default_C``.
    The retrieved rows and prompts come as arrays (``workflows.inputs.arrays.real_linear_rows``
    retrieves them from a store's pool and REAL-Prompt bank).
    """

    fit_input = "none"
    _data_params = ("text_weights", "retrieved_features", "retrieved_labels", "prompt_features", "prompt_labels")
    _state_arrays = ("coef_",)
    _state_scalars = ("C_", "val_scores_", "n_retrieved_")

    def __init__(self, text_weights: np.ndarray | None = None, retrieved_features: np.ndarray | None = None,
                 retrieved_labels: np.ndarray | None = None, prompt_features: np.ndarray | None = None,
                 prompt_labels: np.ndarray | None = None, wise_alpha: float = 0.5, C: float | None = None,
                 Cs: tuple[float, ...] = C_GRID, default_C: float = 10.0, max_iter: int = 1000,
                 logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        self.text_weights = text_weights
        self.retrieved_features = retrieved_features
        self.retrieved_labels = retrieved_labels
        self.prompt_features = prompt_features
        self.prompt_labels = prompt_labels
        self.wise_alpha = wise_alpha
        self.C = C
        self.Cs = Cs
        self.default_C = default_C
        self.max_iter = max_iter
        self.logit_scale = logit_scale
        self.temperature = temperature

    def _training_rows(self, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts, labels = [], []
        for name, feats, ys in (("retrieved", self.retrieved_features, self.retrieved_labels),
                                ("prompt", self.prompt_features, self.prompt_labels)):
            if feats is None or len(feats) == 0:
                continue
            F = check_features(feats, name=f"{name}_features", n_features=T.shape[1])
            parts.append(l2_normalize(F).astype(np.float64))
            labels.append(check_labels(ys, F.shape[0], T.shape[0], name=f"{name}_labels"))
        if not parts:
            raise InputError("REAL-Linear has no training rows: no retrieved images and no prompt features")
        return np.concatenate(parts), np.concatenate(labels)

    def _fit_C(self, X: np.ndarray, y: np.ndarray, T: np.ndarray, C: float) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression

        if np.unique(y).size < 2:
            raise InputError("REAL-Linear needs training rows of at least 2 classes")
        model = LogisticRegression(C=C, fit_intercept=False, max_iter=self.max_iter, tol=1e-6, warm_start=True)
        present = np.unique(y)
        model.coef_ = (self.logit_scale * l2_normalize(T.astype(np.float64)))[present]
        if present.size == 2:
            model.coef_ = model.coef_[1:] - model.coef_[:1]
        model.fit(X, y)
        W = np.zeros((T.shape[0], T.shape[1]))
        coef = np.asarray(model.coef_, np.float64)
        if present.size == 2:
            coef = np.vstack([-coef / 2, coef / 2])
        W[present] = coef
        return W

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> RealLinear:
        """Fit the cross-modal head; choose C on (X_val, y_val) only, if given."""
        if not 0.0 <= self.wise_alpha <= 1.0:
            raise InputError(f"wise_alpha must be in [0, 1], got {self.wise_alpha}")
        T = check_text_weights(self.text_weights)
        Xtr, ytr = self._training_rows(T)
        self._set_classes(T.shape[0], T.shape[1])
        self.n_retrieved_ = 0 if self.retrieved_features is None else len(self.retrieved_features)
        val = None if self.C is not None else check_validation_pair(X_val, y_val, T.shape[1], T.shape[0])
        self.val_scores_: list[float] | None = None
        if val is None:
            self.C_ = float(self.default_C if self.C is None else self.C)
            self.coef_ = self._fit_C(Xtr, ytr, T, self.C_)
            return self
        fits = {c: self._fit_C(Xtr, ytr, T, c) for c in self.Cs}
        Xv = l2_normalize(val[0])
        zs = zero_shot_logits(Xv, T, self.logit_scale)
        best, scores = select_by_accuracy(list(self.Cs), lambda c: self._mix(zs, Xv @ fits[c].T), val[1])
        self.C_, self.coef_, self.val_scores_ = float(best), fits[best], scores
        return self

    def _mix(self, zero_shot: np.ndarray, linear: np.ndarray) -> np.ndarray:
        return (1 - self.wise_alpha) * zero_shot + self.wise_alpha * linear

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """(1 - a) logit_scale x_n T_n^T + a x_n W^T, (n, C)."""
        self._check_fitted()
        Xn = l2_normalize(check_features(X, n_features=self.n_features_in_))
        zero_shot = zero_shot_logits(Xn, self._required_text_weights(), self.logit_scale)
        return self._mix(zero_shot, Xn @ self.coef_.T.astype(Xn.dtype))

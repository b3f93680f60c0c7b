"""AMU-Tuning, closed form (Tang et al., "AMU-Tuning: Effective Logit Bias for CLIP-based Few-shot
Learning", CVPR 2024; official code github.com/TJU-sjyj/AMU-Tuning).

AMU adds to CLIP's zero-shot logits a logit bias computed from an auxiliary image encoder's
features (MoCo / DINO-style), weighted per sample by an uncertainty factor of the zero-shot
prediction:

    logits(x) = 100 x_clip T^T + alpha * kappa(x) * z(x_aux W^T + b)

* ``z`` standardizes each row of auxiliary logits (mean 0, unbiased std 1: the official
  ``logit_normalize``);
* ``kappa`` is the official uncertainty factor of the zero-shot probabilities
  p = softmax(100 x_clip T^T): "moment" (the paper's kurtosis weighting)
  kappa = (m4 / 250)^-power with m4 = mean(((p - mean p) / std p)^4), "entropy"
  kappa = exp(power * H(p) / log C), "max" kappa = max(p)^-power, or "none" (kappa = 1);
* the auxiliary head is the paper's feature initialisation (``head="class_mean"``: W = per-class
  sums of the L2-normalized auxiliary features divided by N / C, b = 0), used as is instead of
  trained by SGD, or a closed-form GDA on the auxiliary features (``head="gda"``).

Differences from the official code: no SGD fine-tuning of the head (the multi-branch training and
``lambda_merge`` are not used; the closed form is what stored features allow), and ``alpha`` is
chosen on a validation split instead of fixed at 0.5 when ``alpha=None`` and validation data are
given. Inputs are one array per row holding the CLIP features followed by the auxiliary features
(``X = [X_clip | X_aux]``); the CLIP width is the text weights' width.
"""
from __future__ import annotations

import numpy as np

from solvers._base.checks import check_class_counts, check_features, check_text_weights, check_validation_pair
from solvers._base.fit_warnings import record_warning, start_warnings, warn_on_grid_edge
from solvers._base.normalize import l2_normalize
from solvers._base.softmax import softmax
from solvers._base.solver import Solver
from solvers.errors import InputError
from solvers.model_selection.validation import select_by_accuracy
from solvers.zero_shot.zero_shot import zero_shot_logits

ALPHAS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
UNCERTAINTIES = ("moment", "entropy", "max", "none")
HEADS = ("class_mean", "gda")


def standardize_rows(logits: np.ndarray) -> np.ndarray:
    """Each row minus its mean, divided by its unbiased standard deviation (``logit_normalize``)."""
    centred = logits - logits.mean(axis=1, keepdims=True)
    std = centred.std(axis=1, ddof=1, keepdims=True)
    return centred / np.where(std > 0, std, 1.0)


def uncertainty_factor(zero_shot: np.ndarray, kind: str = "moment", power: float = 0.4) -> np.ndarray:
    """kappa (n,) of zero-shot logits (n, C): see the module docstring for each ``kind``."""
    if kind not in UNCERTAINTIES:
        raise InputError(f"uncertainty must be one of {UNCERTAINTIES}, got {kind!r}")
    if kind == "none":
        return np.ones(zero_shot.shape[0])
    p = softmax(zero_shot)
    if kind == "moment":
        std = p.std(axis=1, ddof=1, keepdims=True)
        z = (p - p.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)
        # A uniform row (std 0, kurtosis undefined) gets the largest finite factor.
        return (np.maximum(np.mean(z ** 4, axis=1), np.finfo(np.float64).tiny) / 250.0) ** -power
    if kind == "entropy":
        entropy = -np.sum(p * np.log(np.clip(p, 1e-300, None)), axis=1) / np.log(p.shape[1])
        return np.exp(power * entropy)
    return p.max(axis=1) ** -power


class AMU(Solver):
    """AMU-Tuning, closed form (Tang et al., CVPR 2024): zero-shot CLIP + alpha * kappa(x) * an
    auxiliary encoder's class-mean (or GDA) logits, X = [CLIP features | auxiliary features].

    ``head``: "class_mean" (the paper's feature initialisation, no training) or "gda" (shared
    shrunk covariance on the auxiliary features). ``uncertainty`` / ``power``: the paper's
    weighting kappa ("moment" = kurtosis of the zero-shot probabilities, the paper's choice).
    ``alpha=None`` picks alpha from ``alphas`` by validation accuracy, else ``default_alpha``
    (the official 0.5) with a warning; ``alpha_source_`` says which.
    """

    _state_arrays = ("aux_coef_", "aux_intercept_")
    _state_scalars = ("alpha_", "alpha_source_", "val_scores_", "n_clip_features_")

    def __init__(self, text_weights: np.ndarray | None = None, classes: list | np.ndarray | None = None,
                 head: str = "class_mean",
                 uncertainty: str = "moment", power: float = 0.4, alpha: float | None = None,
                 alphas: tuple[float, ...] = ALPHAS, default_alpha: float = 0.5,
                 logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        self.text_weights = text_weights
        self.classes = classes
        self.head = head
        self.uncertainty = uncertainty
        self.power = power
        self.alpha = alpha
        self.alphas = alphas
        self.default_alpha = default_alpha
        self.logit_scale = logit_scale
        self.temperature = temperature

    def _split(self, X: np.ndarray, D: int) -> tuple[np.ndarray, np.ndarray]:
        if X.shape[1] <= D:
            raise InputError(f"X has {X.shape[1]} feature(s) but AMU takes the {D} CLIP features followed by an "
                             "auxiliary encoder's features (give --aux-encoder)")
        return X[:, :D], l2_normalize(X[:, D:])

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> AMU:
        """Fit the auxiliary head on [CLIP | aux] rows X with labels y; choose alpha on X_val."""
        if self.text_weights is None:
            raise InputError("AMU adds a logit bias to CLIP's zero-shot logits: it needs text_weights")
        if self.head not in HEADS:
            raise InputError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.uncertainty not in UNCERTAINTIES:
            raise InputError(f"uncertainty must be one of {UNCERTAINTIES}, got {self.uncertainty!r}")
        T = check_text_weights(self.text_weights)
        C, D = T.shape
        X = check_features(X)
        y = self._fit_labels(y, X.shape[0], C)  # labels among ``classes`` (default range(C), the bank's)
        check_class_counts(y, C, classes=self.classes_)
        _, A = self._split(X, D)
        A = A.astype(np.float64)
        start_warnings(self)
        if self.head == "class_mean":
            sums = np.zeros((C, A.shape[1]))
            np.add.at(sums, y, A)
            self.aux_coef_ = sums / (len(y) / C)
            self.aux_intercept_ = np.zeros(C)
        else:
            from solvers.few_shot.gda import GDA

            gda = GDA(n_classes=C).fit(A, y)
            self.aux_coef_, self.aux_intercept_ = gda.coef_, gda.intercept_
            self.fit_warnings_ += list(gda.fit_warnings_)
        self.n_clip_features_ = int(D)
        self._set_classes(C, X.shape[1])
        self.val_scores_: list[float] | None = None
        if self.alpha is not None:
            self.alpha_, self.alpha_source_ = float(self.alpha), "given"
        else:
            val = check_validation_pair(X_val, y_val, X.shape[1], self.classes_)
            if val is None:
                self.alpha_, self.alpha_source_ = float(self.default_alpha), "default"
                record_warning(self, f"no validation split: alpha = default_alpha {self.default_alpha:g} "
                                     "(the official value is 0.5), not searched")
            else:
                zs, bias = self.logit_parts(val[0])
                best, scores = select_by_accuracy(list(self.alphas), lambda a: zs + a * bias, val[1])
                self.alpha_, self.alpha_source_, self.val_scores_ = float(best), "validation", scores
                warn_on_grid_edge(self, "alpha", self.alphas, self.alpha_, "give wider alphas")
        return self

    def logit_parts(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(zero-shot logits, kappa(x) * standardized auxiliary logits), both (n, C)."""
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_, other="the fitted model")
        clip, A = self._split(X, self.n_clip_features_)
        zs = zero_shot_logits(clip.astype(np.float64), self._required_text_weights(), self.logit_scale)
        aux = standardize_rows(A.astype(np.float64) @ self.aux_coef_.T + self.aux_intercept_)
        return zs, uncertainty_factor(zs, self.uncertainty, self.power)[:, None] * aux

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits (n, C): zero-shot + alpha * kappa * standardized auxiliary logits."""
        zs, bias = self.logit_parts(X)
        return zs + self.alpha_ * bias

"""Transductive / unsupervised GDA: the GDA of Wang et al. (ICLR 2024, "A Hard-to-Beat Baseline
for Training-free CLIP-based Adaptation", Sec. on unsupervised adaptation) fitted on zero-shot
pseudo-labels of unlabelled features."""
from __future__ import annotations

import numpy as np

from solvers._base.checks import check_features, check_target, check_text_weights, encode_labels, resolve_classes
from solvers._base.normalize import l2_normalize
from solvers._base.softmax import softmax
from solvers.errors import InputError
from solvers.few_shot.gda import ALPHAS, GDA
from solvers.zero_shot.zero_shot import zero_shot_logits


def confident_per_class(labels: np.ndarray, confidence: np.ndarray, n_classes: int, k: int,
                        min_confidence: float | None = None) -> np.ndarray:
    """Row indices of the ``k`` most confident rows of each pseudo-class (above ``min_confidence``)."""
    ok = np.ones(labels.shape[0], bool) if min_confidence is None else confidence >= min_confidence
    rows = np.flatnonzero(ok)
    order = rows[np.lexsort((-confidence[rows], labels[rows]))]
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, np.arange(n_classes))
    rank = np.arange(order.size) - starts[sorted_labels]
    return np.sort(order[rank < k])


class UnsupervisedGDA(GDA):
    """GDA fitted on pseudo-labels (Wang et al., ICLR 2024): no labels needed.

    Round 1 labels the unlabelled rows by zero-shot argmax; per class, the ``k_per_class`` rows
    with the highest softmax confidence (and confidence >= ``min_confidence`` when set) train a GDA
    (``alpha`` defaults to ``default_alpha``, or is searched on X_val/y_val when given). Each of
    the remaining ``n_iter - 1`` rounds re-labels with the current zero-shot + GDA ensemble.
    A class that receives no pseudo-labelled row is represented by its normalized text
    embedding as a single pseudo-sample, so every class has a mean. ``classes`` names the text
    bank's rows (default range(C)); validation labels are among them.
    """

    fit_input = "unlabelled"

    _state_scalars = GDA._state_scalars + ("n_pseudo_",)

    def __init__(self, text_weights: np.ndarray | None = None, classes: list | np.ndarray | None = None,
                 k_per_class: int = 16,
                 min_confidence: float | None = None, n_iter: int = 1, alpha: float | None = None,
                 alphas: tuple[float, ...] = ALPHAS, default_alpha: float = 1.0,
                 covariance: str = "ks", priors: str = "uniform", normalize: bool = True,
                 logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        super().__init__(text_weights=text_weights, classes=classes, alpha=alpha, alphas=alphas,
                         default_alpha=default_alpha, covariance=covariance, priors=priors,
                         normalize=normalize, logit_scale=logit_scale, temperature=temperature)
        self.k_per_class = k_per_class
        self.min_confidence = min_confidence
        self.n_iter = n_iter

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> UnsupervisedGDA:
        """Fit on unlabelled rows X; ``y`` is not used (scikit-learn's signature): when given, its
        labels must be among ``classes_`` (the text bank's)."""
        if self.text_weights is None:
            raise InputError("UnsupervisedGDA needs text_weights to make pseudo-labels")
        if int(self.n_iter) < 1 or int(self.k_per_class) < 1:
            raise InputError("n_iter and k_per_class must be >= 1")
        T = l2_normalize(check_text_weights(self.text_weights).astype(np.float64))
        X = check_features(X, n_features=T.shape[1])
        C = T.shape[0]
        names = resolve_classes(self.classes, None, C)
        logits = zero_shot_logits(X, T, self.logit_scale)
        for _ in range(int(self.n_iter)):
            probs = softmax(logits, self.temperature)
            labels = probs.argmax(axis=1)
            keep = confident_per_class(labels, probs.max(axis=1), C, int(self.k_per_class),
                                       self.min_confidence)
            missing = np.setdiff1d(np.arange(C), labels[keep])
            X_fit = np.vstack([X[keep], T[missing].astype(X.dtype)])
            y_fit = np.concatenate([labels[keep], missing])
            GDA.fit(self, X_fit, names[y_fit], X_val, y_val)
            self.n_pseudo_ = int(keep.size)
            logits = self.class_logits(X)
        if y is not None:
            encode_labels(check_target(y, X.shape[0], owner=type(self).__name__), self.classes_)
        return self

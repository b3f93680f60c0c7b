"""Transductive / unsupervised GDA: the GDA of Wang et al. (ICLR 2024, "A Hard-to-Beat Baseline
for Training-free CLIP-based Adaptation", Sec. on unsupervised adaptation) fitted on zero-shot
pseudo-labels of unlabelled features."""
from __future__ import annotations

import numpy as np

from solvers._base.checks import check_features, check_target, check_text_weights, encode_labels, resolve_classes
from solvers._base.fit_warnings import record_warning
from solvers._base.normalize import l2_normalize
from solvers._base.softmax import softmax
from solvers.errors import InputError
from solvers.few_shot.gda import ALPHAS, GDA
from solvers.unlabelled._pseudo_labels import check_rounds, filled_message, run_rounds
from solvers.zero_shot.zero_shot import zero_shot_logits


class UnsupervisedGDA(GDA):
    """GDA fitted on pseudo-labels (Wang et al., ICLR 2024): no labels needed.

    Round 1 labels the unlabelled rows by zero-shot argmax; per class, the ``k_per_class`` rows
    with the highest softmax confidence (and confidence >= ``min_confidence`` when set) train a GDA
    (``alpha`` defaults to ``default_alpha``, or is searched on X_val/y_val when given). Each of
    the remaining ``rounds - 1`` rounds re-labels with the current zero-shot + GDA ensemble. The
    pseudo-labelled rows follow the rule of ``solvers.unlabelled._pseudo_labels`` (shared with
    ``LabelFree``): a class with no kept row takes its most probable rows that no other class
    kept (``filled_classes_``, warned), so a row never has two labels. ``pseudo_changed_``: per
    round after the first, the share of rows whose pseudo-label changed. ``classes`` names the
    text bank's rows (default range(C)); validation labels are among them.
    """

    fit_input = "unlabelled"

    _state_scalars = GDA._state_scalars + ("n_pseudo_", "pseudo_changed_", "filled_classes_")

    def __init__(self, text_weights: np.ndarray | None = None, classes: list | np.ndarray | None = None,
                 k_per_class: int = 16,
                 min_confidence: float | None = None, rounds: int = 1, alpha: float | None = None,
                 alphas: tuple[float, ...] = ALPHAS, default_alpha: float = 1.0,
                 covariance: str = "ks", priors: str = "uniform", normalize: bool = True,
                 logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        super().__init__(text_weights=text_weights, classes=classes, alpha=alpha, alphas=alphas,
                         default_alpha=default_alpha, covariance=covariance, priors=priors,
                         normalize=normalize, logit_scale=logit_scale, temperature=temperature)
        self.k_per_class = k_per_class
        self.min_confidence = min_confidence
        self.rounds = rounds

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> UnsupervisedGDA:
        """Fit on unlabelled rows X; ``y`` is not used (scikit-learn's signature): when given, its
        labels must be among ``classes_`` (the text bank's)."""
        if self.text_weights is None:
            raise InputError("UnsupervisedGDA needs text_weights to make pseudo-labels")
        check_rounds(self.rounds, self.k_per_class, self.min_confidence)
        T = l2_normalize(check_text_weights(self.text_weights).astype(np.float64))
        X = check_features(X, n_features=T.shape[1])
        names = resolve_classes(self.classes, None, T.shape[0])

        def fit_gda(rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
            GDA.fit(self, X[rows], names[labels], X_val, y_val)
            return softmax(self.class_logits(X), self.temperature)

        probs = softmax(zero_shot_logits(X, T, self.logit_scale), self.temperature)
        done = run_rounds(probs, fit_gda, int(self.rounds), int(self.k_per_class), self.min_confidence)
        self.n_pseudo_ = int(done.rows.size)
        self.pseudo_changed_ = done.changed
        self.filled_classes_ = done.filled
        if done.filled:
            record_warning(self, filled_message(done.filled, int(self.k_per_class)))
        if y is not None:
            encode_labels(check_target(y, X.shape[0], owner=type(self).__name__), self.classes_)
        return self

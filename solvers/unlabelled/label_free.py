"""Label-free adaptation on an unlabelled split: zero-shot pseudo-labels, the most confident rows
per class kept, a closed-form head fitted on them, refreshed for a few rounds.

The recipe of NoLA (Naeem et al., "CLIP meets DINO for Tuning Zero-Shot Classifier using Unlabeled
Image Collections") and of "Enhancing CLIP with CLIP" (Kahana et al., pseudo-labelling):
CLIP labels an unlabelled image collection, a classifier is trained on the confident part of it,
ideally on the features of a self-supervised image encoder (DINO), and the pseudo-labels are
refreshed with the new classifier. Here the classifier is closed form (GDA or a logistic probe on
stored features) instead of trained with SGD and augmentations; NoLA's description-based text
classifier and its DINO-feature label refinement are replaced by the class text weights and the
rounds of refreshed pseudo-labels.

Inputs: ``X = [X_clip]`` (head on CLIP features) or ``X = [X_clip | X_aux]`` (head on the
auxiliary encoder's features, the NoLA setting); the CLIP width is the text weights' width.
Transductive use predicts the split it was fitted on; inductive use predicts another split.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from solvers._base.checks import check_features, check_target, check_text_weights, encode_labels
from solvers._base.fit_warnings import record_warning, start_warnings
from solvers._base.normalize import l2_normalize
from solvers._base.softmax import softmax
from solvers._base.solver import Solver
from solvers.errors import InputError
from solvers.unlabelled._pseudo_labels import check_rounds, filled_message, run_rounds
from solvers.zero_shot.zero_shot import zero_shot_logits

if TYPE_CHECKING:
    from solvers.few_shot.gda import GDA
    from solvers.few_shot.linear_probe import LinearProbe

HEADS = ("gda", "linear_probe")


class LabelFree(Solver):
    """Label-free adaptation (NoLA / pseudo-labelling): zero-shot pseudo-labels of unlabelled rows,
    the ``k_per_class`` most confident per class (confidence >= ``min_confidence`` when set), a
    closed-form head, ``rounds`` rounds. The pseudo-labelled rows follow the rule of
    ``solvers.unlabelled._pseudo_labels`` (shared with ``UnsupervisedGDA``): a class with no kept
    row takes its most probable rows that no other class kept, so a row never has two labels.

    ``head``: "gda" (shared shrunk covariance, Wang et al.) or "linear_probe" (L2-regularised
    logistic regression, ``default_C``). The head is fitted on the auxiliary columns of
    X = [CLIP | aux] when present (``head_features_ = "aux"``), else on the CLIP features. Round 1
    pseudo-labels come from zero-shot CLIP; each later round's from the previous head. The model's
    logits are the last head's. ``pseudo_changed_`` lists, per round after the first, the share of
    rows whose pseudo-label changed; ``filled_classes_`` the classes filled from free rows.
    """

    fit_input = "unlabelled"
    _state_arrays = ("coef_", "intercept_")
    _state_scalars = ("n_clip_features_", "head_features_", "n_pseudo_", "pseudo_changed_", "filled_classes_")

    def __init__(self, text_weights: np.ndarray | None = None, classes: list | np.ndarray | None = None,
                 k_per_class: int = 16, rounds: int = 3, min_confidence: float | None = None,
                 head: str = "gda", default_C: float = 1.0, logit_scale: float = 100.0,
                 temperature: float = 1.0) -> None:
        self.text_weights = text_weights
        self.classes = classes
        self.k_per_class = k_per_class
        self.rounds = rounds
        self.min_confidence = min_confidence
        self.head = head
        self.default_C = default_C
        self.logit_scale = logit_scale
        self.temperature = temperature

    def _head_columns(self, X: np.ndarray) -> np.ndarray:
        D = self.n_clip_features_
        return l2_normalize(X[:, D:] if X.shape[1] > D else X)

    def _fit_head(self, H: np.ndarray, y: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
        if self.head == "gda":
            from solvers.few_shot.gda import GDA

            model: GDA | LinearProbe = GDA(n_classes=C).fit(H, y)
        else:
            from solvers.few_shot.linear_probe import LinearProbe

            model = LinearProbe(C=self.default_C, n_classes=C).fit(H, y)
        for message in getattr(model, "fit_warnings_", []) or []:
            record_warning(self, f"head: {message}")
        return np.asarray(model.coef_, np.float64), np.asarray(model.intercept_, np.float64)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> LabelFree:
        """Fit on unlabelled rows X (``y`` and the validation pair are not used: no labels; a
        ``y`` given is only checked to hold labels among ``classes_``, the bank's rows named by
        ``classes``, default range(C))."""
        if self.text_weights is None:
            raise InputError("label-free adaptation makes its pseudo-labels with zero-shot CLIP: it needs text_weights")
        if self.head not in HEADS:
            raise InputError(f"head must be one of {HEADS}, got {self.head!r}")
        check_rounds(self.rounds, self.k_per_class, self.min_confidence)
        T = check_text_weights(self.text_weights)
        C, D = T.shape
        X = check_features(X)
        if X.shape[1] < D:
            raise InputError(f"X has {X.shape[1]} features but text_weights has {D}")
        start_warnings(self)
        self.n_clip_features_ = int(D)
        self.head_features_ = "aux" if X.shape[1] > D else "clip"
        H = self._head_columns(X).astype(np.float64)
        probs = softmax(zero_shot_logits(X[:, :D].astype(np.float64), T, self.logit_scale))

        def fit_head(rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
            self.coef_, self.intercept_ = self._fit_head(H[rows], labels, C)
            return softmax(H @ self.coef_.T + self.intercept_)

        done = run_rounds(probs, fit_head, int(self.rounds), int(self.k_per_class), self.min_confidence)
        self.n_pseudo_ = int(done.rows.size)
        self.pseudo_changed_ = done.changed
        self.filled_classes_ = done.filled
        if done.filled:
            record_warning(self, filled_message(done.filled, int(self.k_per_class)))
        self._set_classes(C, X.shape[1])
        if y is not None:
            encode_labels(check_target(y, X.shape[0], owner=type(self).__name__), self.classes_)
        return self

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits (n, C) of the last round's head."""
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_, other="the fitted model")
        return self._head_columns(X).astype(np.float64) @ self.coef_.T + self.intercept_

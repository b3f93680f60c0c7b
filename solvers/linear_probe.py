"""Linear probe (Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021): multinomial logistic regression on L2-normalized CLIP features."""
from __future__ import annotations

import numpy as np

from solvers.base import Solver
from solvers.checks import (check_class_counts, check_features, check_labels, check_text_weights,
                            check_validation_pair, resolve_n_classes)
from solvers.normalize import l2_normalize
from solvers.progress import progress
from solvers.softmax import log_softmax

COARSE_GRID = tuple(10.0 ** e for e in range(-6, 7))
FINE_STEPS = tuple(e / 4 for e in range(-3, 4))


class LinearProbe(Solver):
    """Multinomial logistic regression (L-BFGS, scikit-learn) on L2-normalized features
    (Radford et al., ICML 2021).

    Objective (scikit-learn's): C * sum_i CE(W x_i + b, y_i) + 1/2 ||W||^2. ``C=None`` searches C
    on the validation split: the coarse grid 1e-6 .. 1e6 (one step per decade), then
    best * 10^{-0.75 .. 0.75 step 0.25}, warm-starting along each grid, keeping the C with the
    best validation accuracy (ties: lowest validation NLL); without a validation split
    ``default_C`` (1.0) is used. ``init="text"`` starts L-BFGS from logit_scale * normalized
    ``text_weights`` (zero bias) instead of zeros.
    """

    _state_arrays = ("coef_", "intercept_")
    _state_scalars = ("C_", "val_scores_")

    def __init__(self, C: float | None = None, n_classes: int | None = None,
                 text_weights: np.ndarray | None = None, init: str = "zeros",
                 default_C: float = 1.0, max_iter: int = 1000, tol: float = 1e-6,
                 logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        self.C = C
        self.n_classes = n_classes
        self.text_weights = text_weights
        self.init = init
        self.default_C = default_C
        self.max_iter = max_iter
        self.tol = tol
        self.logit_scale = logit_scale
        self.temperature = temperature

    def _model(self, C: float, start: tuple[np.ndarray, np.ndarray] | None):
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=C, solver="lbfgs", max_iter=self.max_iter, tol=self.tol,
                                   warm_start=True)
        if start is not None:
            model.coef_, model.intercept_ = start[0].copy(), start[1].copy()
        return model

    def _full(self, model, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """(C, D) weights and (C,) bias; a binary model's single row becomes [-w/2, w/2]."""
        W, b = np.asarray(model.coef_, np.float64), np.asarray(model.intercept_, np.float64)
        if W.shape[0] == 1 and n_classes == 2:
            W, b = np.vstack([-W / 2, W / 2]), np.concatenate([-b / 2, b / 2])
        return W, b

    def _text_start(self, n_classes: int) -> tuple[np.ndarray, np.ndarray] | None:
        if self.init == "zeros":
            return None
        if self.init != "text":
            raise ValueError(f"init must be 'zeros' or 'text', got {self.init!r}")
        if self.text_weights is None:
            raise ValueError("init='text' needs text_weights")
        T = self.logit_scale * l2_normalize(check_text_weights(self.text_weights).astype(np.float64))
        if n_classes == 2:
            return (T[1:] - T[:1]), np.zeros(1)
        return T, np.zeros(n_classes)

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> "LinearProbe":
        """Fit on (X, y); with C=None, choose C by accuracy on (X_val, y_val) only."""
        T = None if self.text_weights is None else check_text_weights(self.text_weights)
        X = check_features(X, n_features=None if T is None else T.shape[1])
        n_classes = resolve_n_classes(T, self.n_classes, y)
        y = check_labels(y, X.shape[0], n_classes)
        check_class_counts(y, n_classes)
        if n_classes < 2:
            raise ValueError("a linear probe needs at least 2 classes")
        Xn = l2_normalize(X)
        start = self._text_start(n_classes)
        val = None if self.C is not None else check_validation_pair(X_val, y_val, X.shape[1], n_classes)
        self.val_scores_ = None
        if self.C is not None or val is None:
            self.C_ = float(self.default_C if self.C is None else self.C)
            W, b = self._full(self._model(self.C_, start).fit(Xn, y), n_classes)
        else:
            Xv = l2_normalize(val[0])
            scores: dict[float, tuple[float, float]] = {}
            fits: dict[float, tuple[np.ndarray, np.ndarray]] = {}

            def sweep(grid: list[float], init: tuple[np.ndarray, np.ndarray] | None) -> None:
                model = self._model(grid[0], init)
                for c in progress(grid, "linear probe C search"):
                    if c in scores:
                        continue
                    model.set_params(C=c).fit(Xn, y)
                    fits[c] = self._full(model, n_classes)
                    logits = Xv @ fits[c][0].T + fits[c][1]
                    accuracy = float(np.mean(np.argmax(logits, axis=1) == val[1]))
                    nll = float(-np.mean(log_softmax(logits)[np.arange(val[1].size), val[1]]))
                    scores[c] = (accuracy, -nll)

            sweep(list(COARSE_GRID), start)
            best = max(COARSE_GRID, key=lambda c: scores[c])
            fine = [best * 10.0 ** s for s in FINE_STEPS]
            low = [c for c in fine if c <= best][::-1]
            high = [c for c in fine if c > best]
            for part in (low, high):
                if part:
                    sweep(part, self._binary_safe(fits[best], n_classes))
            ordered = sorted(scores)
            self.C_ = max(ordered, key=lambda c: scores[c])
            W, b = fits[self.C_]
            self.val_scores_ = {repr(c): scores[c][0] for c in ordered}
        self.coef_, self.intercept_ = W, b
        self._set_classes(n_classes, X.shape[1])
        return self

    @staticmethod
    def _binary_safe(fit: tuple[np.ndarray, np.ndarray], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Convert stored (C, D) weights back to scikit-learn's shape for a warm start."""
        W, b = fit
        if n_classes == 2:
            return W[1:] - W[:1], b[1:] - b[:1]
        return W, b

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits x_n W^T + b, (n, C)."""
        self._check_fitted()
        Xn = l2_normalize(check_features(X, n_features=self.n_features_in_, other="the fitted model"))
        logits = Xn @ self.coef_.T.astype(Xn.dtype)
        logits += self.intercept_.astype(Xn.dtype)
        return logits

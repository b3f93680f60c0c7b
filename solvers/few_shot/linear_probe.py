"""Linear probe (Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021): multinomial logistic regression on L2-normalized CLIP features."""
from __future__ import annotations

import numpy as np

from solvers._base.checks import check_class_counts, check_features, check_text_weights, check_validation_pair
from solvers._base.fit_warnings import record_warning, start_warnings, warn_on_grid_edge
from solvers._base.normalize import l2_normalize
from solvers._base.progress import progress
from solvers._base.softmax import log_softmax
from solvers._base.solver import Solver
from solvers.errors import InputError
from solvers.few_shot.logistic_lbfgs import LogisticFit, fit_logistic

#: The CLIP paper's search (Radford et al. 2021, appendix A.3): C (their 1 / lambda) starts at
#: 1e-6, 1e-4, ..., 1e6, then the interval around the best value is halved until the
#: resolution is 8 steps per decade: the two neighbours at 1, 1/2, 1/4 and 1/8 of a decade.
COARSE_GRID = tuple(10.0 ** e for e in range(-6, 7, 2))
HALVING_STEPS = (1.0, 0.5, 0.25, 0.125)
C_RANGE = (1e-6, 1e6)


class LinearProbe(Solver):
    """Multinomial logistic regression (SciPy's L-BFGS on scikit-learn's objective and stopping
    rule, ``solvers.few_shot.logistic_lbfgs``) on L2-normalized features (Radford et al., ICML 2021).

    Objective (scikit-learn's): C * sum_i CE(W x_i + b, y_i) + 1/2 ||W||^2. ``C=None`` searches C
    on the validation split as the CLIP paper does (appendix A.3): 1e-6, 1e-4, ..., 1e6, then a
    binary search that halves the interval around the best value until the resolution is 8
    values per decade (the neighbours at 1, 1/2, 1/4, 1/8 of a decade: 15 fits in all, within
    1e-6 .. 1e6), each fit warm-started from the nearest one (``tol``, ``max_iter``). Warm
    starts stop at slightly different objectives than a cold fit, which can flip near-tied
    picks, so the ``n_finalists`` best candidates (validation accuracy, then NLL) are fitted on
    to convergence (``final_tol``, ``final_max_iter``) from their search fit and re-scored; the
    winner's converged fit is the model (the objective is strictly convex: a cold fit reaches
    the same optimum, more slowly: bench/RESULTS.md). The search fits
    take float32 products while they can meet ``tol`` (float64 goes on where they cannot); the
    final fits are float64 whatever the rows' dtype (float32 cannot meet ``final_tol``).
    Without a validation split ``default_C`` (1.0) is used.
    ``refit_on_val=True`` refits the chosen C on train + validation rows afterwards, as
    CLIP_benchmark does, keeping the regularisation per row (C scaled by n_train / n_total).
    ``init="text"`` starts L-BFGS from logit_scale * normalized ``text_weights`` (zero bias)
    instead of zeros. A fit that does not converge, or a C on the edge of the searched values,
    warns and is listed in ``fit_warnings_``. ``n_iter_`` is the L-BFGS iterations of the model's
    final fit.
    """

    _state_arrays = ("coef_", "intercept_")
    _state_scalars = ("C_", "val_scores_")

    def __init__(self, C: float | None = None, n_classes: int | None = None,
                 text_weights: np.ndarray | None = None, classes: list | np.ndarray | None = None, init: str = "zeros",
                 default_C: float = 1.0, max_iter: int = 1000, tol: float = 1e-6,
                 final_tol: float = 1e-9, final_max_iter: int = 10000, n_finalists: int = 3,
                 refit_on_val: bool = False, logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        self.C = C
        self.n_classes = n_classes
        self.text_weights = text_weights
        self.classes = classes
        self.init = init
        self.default_C = default_C
        self.max_iter = max_iter
        self.tol = tol
        self.final_tol = final_tol
        self.final_max_iter = final_max_iter
        self.n_finalists = n_finalists
        self.refit_on_val = refit_on_val
        self.logit_scale = logit_scale
        self.temperature = temperature

    def _fit(self, C: float, X: np.ndarray, y: np.ndarray, n_classes: int,
             start: tuple[np.ndarray, np.ndarray] | None, final: bool = False) -> LogisticFit:
        """One L-BFGS fit at C from ``start`` (None: zeros): a search fit (``tol``, ``max_iter``,
        float32 products while they can meet ``tol``) or a final one (``final_tol``,
        ``final_max_iter``, float64)."""
        return fit_logistic(X, y, n_classes, C, start, tol=self.final_tol if final else self.tol,
                            max_iter=self.final_max_iter if final else self.max_iter, float32_products=not final)

    def _final_fit(self, C: float, X: np.ndarray, y: np.ndarray, n_classes: int,
                   start: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """A fit at C to ``final_tol`` from ``start`` (None: zeros); warns when it does not converge."""
        fit = self._fit(C, X, y, n_classes, start, final=True)
        self.n_iter_ = fit.n_iter  # L-BFGS iterations of this fit
        if not fit.converged:
            record_warning(self, f"L-BFGS did not converge at C = {C:.6g} in {self.final_max_iter} iterations "
                                 f"(tol {self.final_tol:g}; {fit.message}); raise final_max_iter")
        return self._full(fit, n_classes)

    @staticmethod
    def _full(fit: LogisticFit, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """(C, D) weights and (C,) bias; a binary model's single row becomes [-w/2, w/2]."""
        W, b = fit.coef, fit.intercept
        if W.shape[0] == 1 and n_classes == 2:
            W, b = np.vstack([-W / 2, W / 2]), np.concatenate([-b / 2, b / 2])
        return W, b

    def _text_start(self, n_classes: int) -> tuple[np.ndarray, np.ndarray] | None:
        if self.init == "zeros":
            return None
        if self.init != "text":
            raise InputError(f"init must be 'zeros' or 'text', got {self.init!r}")
        if self.text_weights is None:
            raise InputError("init='text' needs text_weights")
        T = self.logit_scale * l2_normalize(check_text_weights(self.text_weights).astype(np.float64))
        if n_classes == 2:
            return (T[1:] - T[:1]), np.zeros(1)
        return T, np.zeros(n_classes)

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> LinearProbe:
        """Fit on (X, y); with C=None, choose C by accuracy on (X_val, y_val) only."""
        T = None if self.text_weights is None else check_text_weights(self.text_weights)
        X = check_features(X, n_features=None if T is None else T.shape[1])
        y = self._fit_labels(y, X.shape[0], None if T is None else T.shape[0])
        n_classes = self.classes_.size
        check_class_counts(y, n_classes, classes=self.classes_)
        if n_classes < 2:
            raise InputError(f"a linear probe needs at least 2 classes; y has 1 class ({self.classes_[0]!r})")
        start_warnings(self)
        Xn = l2_normalize(X).astype(np.float64, copy=False)  # float64 L-BFGS (see the class docstring)
        start = self._text_start(n_classes)
        val = None if self.C is not None else check_validation_pair(X_val, y_val, X.shape[1], self.classes_)
        if self.refit_on_val and self.C is None and val is None:
            raise InputError("refit_on_val=True needs a validation split (X_val, y_val)")
        self.val_scores_: dict[str, float] | None = None
        if self.C is not None or val is None:
            self.C_ = float(self.default_C if self.C is None else self.C)
            W, b = self._final_fit(self.C_, Xn, y, n_classes, start)
        else:
            Xv, yv = l2_normalize(val[0]).astype(np.float64, copy=False), val[1]
            W, b = self._search(Xn, y, Xv, yv, n_classes, start)
            if self.refit_on_val:
                n_train = y.size
                X_all, y_all = np.concatenate([Xn, Xv]), np.concatenate([y, yv])
                self.C_ = self.C_ * n_train / y_all.size
                W, b = self._final_fit(self.C_, X_all, y_all, n_classes, start)
        self.coef_, self.intercept_ = W, b
        self.n_features_in_ = int(X.shape[1])
        return self

    def _search(self, Xn: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray, n_classes: int,
                start: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """Warm-started sweep over C, the finalists fitted to final_tol; sets C_ and val_scores_."""
        scores: dict[float, tuple[float, float]] = {}
        fits: dict[float, LogisticFit] = {}  # as fitted: a binary model keeps its single row
        unconverged: list[float] = []

        def score(fit: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
            logits = Xv @ fit[0].T + fit[1]
            accuracy = float(np.mean(np.argmax(logits, axis=1) == yv))
            nll = float(-np.mean(log_softmax(logits)[np.arange(yv.size), yv]))
            return accuracy, -nll

        def sweep(grid: list[float], init: tuple[np.ndarray, np.ndarray] | None) -> None:
            for c in progress(grid, "linear probe C search"):
                if c in scores:
                    continue
                fit = self._fit(c, Xn, y, n_classes, init)
                if not fit.converged:
                    unconverged.append(c)
                init = fit.coef, fit.intercept  # the next C starts here
                fits[c] = fit
                scores[c] = score(self._full(fit, n_classes))

        sweep(list(COARSE_GRID), start)
        # the binary search around the peak, on exponents j of C = 10^(j / 8) (the final lattice)
        lowest, highest = (round(8 * np.log10(c)) for c in C_RANGE)
        j = round(8 * np.log10(max(COARSE_GRID, key=lambda c: scores[c])))
        for step in (round(8 * s) for s in HALVING_STEPS):
            centre = j
            around = [i for i in (centre - step, centre, centre + step) if lowest <= i <= highest]
            for i in (i for i in around if i != centre):
                near = fits[10.0 ** (centre / 8)]
                sweep([10.0 ** (i / 8)], (near.coef, near.intercept))
            j = max(around, key=lambda i: (scores[10.0 ** (i / 8)], -i))  # the smaller C on exact ties
        if unconverged:
            record_warning(self, f"{len(unconverged)} of {len(scores)} warm-started search fits stopped at "
                                 f"max_iter = {self.max_iter} (C = {', '.join(f'{c:.3g}' for c in unconverged[:5])}"
                                 f"{' ...' if len(unconverged) > 5 else ''}); the finalists are fitted on to final_tol")
        ordered = sorted(scores)
        # the finalists: best candidates by (accuracy, -NLL), smaller C first on exact ties
        finalists = sorted(ordered, key=lambda c: scores[c], reverse=True)
        finalists = sorted(finalists[:max(1, int(self.n_finalists))])
        cold, iterations = {}, {}
        for c in finalists:  # each fitted on from its search fit to final_tol
            cold[c] = self._final_fit(c, Xn, y, n_classes, (fits[c].coef, fits[c].intercept))
            iterations[c] = self.n_iter_
        for c, fit in cold.items():
            scores[c] = score(fit)
        self.C_ = max(finalists, key=lambda c: scores[c])
        self.n_iter_ = iterations[self.C_]
        self.val_scores_ = {repr(c): scores[c][0] for c in ordered}
        warn_on_grid_edge(self, "C", ordered, self.C_, "the search covers 1e-6 .. 1e6")
        return cold[self.C_]

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits x_n W^T + b, (n, C)."""
        self._check_fitted()
        Xn = l2_normalize(check_features(X, n_features=self.n_features_in_, estimator=self))
        logits = Xn @ self.coef_.T.astype(Xn.dtype)
        logits += self.intercept_.astype(Xn.dtype)
        return logits

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
from solvers.few_shot.logistic_lbfgs import LogisticFit, LogisticProblem, Settle

#: The CLIP paper's search (Radford et al. 2021, appendix A.3): C (their 1 / lambda) starts at
#: 1e-6, 1e-4, ..., 1e6, then the interval around the best value is halved until the
#: resolution is 8 steps per decade: the two neighbours at 1, 1/2, 1/4 and 1/8 of a decade.
COARSE_GRID = tuple(10.0 ** e for e in range(-6, 7, 2))
HALVING_STEPS = (1.0, 0.5, 0.25, 0.125)
C_RANGE = (1e-6, 1e6)
#: Search fits settle (``Settle``: they stop once their validation predictions have held for a few
#: iterations, and only the chosen C is fitted on to tol) where one product with the training rows
#: takes at least this many multiply-adds (rows x columns x classes), there an iteration costs
#: milliseconds to seconds, and where there are at most twice as many validation rows as training
#: rows (checking the predictions costs a product with the validation rows: with more it costs
#: more than it saves, e.g. food101's 20,200 against 1,616). Elsewhere every search fit runs to
#: tol (bench/RESULTS.md: on a few dozen validation rows a settled score is a row off often enough
#: to move the choice).
SETTLE_WORK = 2 ** 27
SETTLE_VALIDATION_ROWS = 2
#: Validation NLLs within this relative difference rank as equal (then the smaller C wins), so
#: that float noise between converged fits cannot reorder them.
NLL_TIE = 1e-7


def best_by_rule(candidates: list[float], scores: dict[float, tuple[int, float]]) -> float:
    """The best C of ``candidates`` by the search's rule: most correct validation rows, then the
    lowest validation NLL (within a relative ``NLL_TIE`` counting as equal), then the smallest C.
    ``scores`` maps C to (correct rows, NLL)."""
    most = max(scores[c][0] for c in candidates)
    tied = [c for c in candidates if scores[c][0] == most]
    lowest = min(scores[c][1] for c in tied)
    return min(c for c in tied if scores[c][1] <= lowest + NLL_TIE * abs(lowest))


class LinearProbe(Solver):
    """Multinomial logistic regression (L-BFGS on scikit-learn's objective and stopping rule,
    ``solvers.few_shot.logistic_lbfgs``) on L2-normalized features (Radford et al., ICML 2021).

    Objective (scikit-learn's): C * sum_i CE(W x_i + b, y_i) + 1/2 ||W||^2. ``C=None`` searches C on
    the validation split as the CLIP paper does (appendix A.3): 1e-6, 1e-4, ..., 1e6, then a binary
    search that halves the interval around the best value until the resolution is 8 values per
    decade (the neighbours at 1, 1/2, 1/4, 1/8 of a decade: 15 fits in all, within 1e-6 .. 1e6).
    Every visited C is scored by a fit converged on its float64 gradient (``tol``, ``max_iter``;
    preconditioned L-BFGS, on the rows' span when there are fewer rows than dimensions:
    ``solvers.few_shot.logistic_lbfgs.LogisticProblem``), started from whichever has the lower
    objective of the fit at the nearest visited C and the fitted path's value interpolated (or
    extrapolated) linearly in log C from the two nearest fitted values (the strictly convex
    objective has one optimum, so the start changes the iterations, not the fit beyond ``tol``), and
    the model is the chosen C's fit. Where one product with the rows takes ``SETTLE_WORK``
    multiply-adds or more (and validation rows are at most twice the rows), the search fits settle
    instead (``solvers.few_shot.logistic_lbfgs.Settle``: they stop once their validation predictions
    have held for 3 iterations and their gradient is within 100 x ``tol``) and the chosen C's fit
    goes on to ``tol`` for the model. The rule: the most correct validation rows (an integer count,
    so float noise cannot break an accuracy tie), then the lower validation NLL (values within a
    relative ``NLL_TIE`` count as equal), then the smaller C. Rows are normalized in float64
    whatever their dtype, so float32 and float64 copies of the same features choose the same C; the
    scores do not depend on the BLAS thread count beyond the fits' tolerance. A choice is a
    near-tie, and warns, when a C a decade or more away predicts some validation row differently and
    scores within one validation row of it (one row would change the choice by a decade).
    Without a validation split ``default_C`` (1.0) is used.
    ``refit_on_val=True`` refits the chosen C on train + validation rows afterwards, as
    CLIP_benchmark does, keeping the regularisation per row (C scaled by n_train / n_total).
    ``init="text"`` starts L-BFGS from logit_scale * normalized ``text_weights`` (zero bias)
    instead of zeros. A fit that does not converge, a C on the edge of the searched values, or a
    near-tied choice warns and is listed in ``fit_warnings_``. ``n_iter_`` is the L-BFGS
    iterations of the model's fit.
    """

    _state_arrays = ("coef_", "intercept_")
    _state_scalars = ("C_", "val_scores_")

    def __init__(self, C: float | None = None, n_classes: int | None = None,
                 text_weights: np.ndarray | None = None, classes: list | np.ndarray | None = None, init: str = "zeros",
                 default_C: float = 1.0, max_iter: int = 10000, tol: float = 1e-9,
                 refit_on_val: bool = False, logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        self.C = C
        self.n_classes = n_classes
        self.text_weights = text_weights
        self.classes = classes
        self.init = init
        self.default_C = default_C
        self.max_iter = max_iter
        self.tol = tol
        self.refit_on_val = refit_on_val
        self.logit_scale = logit_scale
        self.temperature = temperature

    def _fit(self, C: float, problem: LogisticProblem,
             start: tuple[np.ndarray, np.ndarray] | list[tuple[np.ndarray, np.ndarray]] | None,
             settle: Settle | None = None) -> LogisticFit:
        """One L-BFGS fit at C to ``tol`` (at most ``max_iter`` iterations) from ``start`` (None:
        zeros; a list: the start of lowest objective); ``settle``: or until its predictions settle."""
        return problem.fit(C, start, tol=self.tol, max_iter=self.max_iter, settle=settle)

    def _final_fit(self, C: float, problem: LogisticProblem, n_classes: int,
                   start: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """A fit at C from ``start`` (None: zeros); warns when it does not converge."""
        fit = self._fit(C, problem, start)
        self.n_iter_ = fit.n_iter  # L-BFGS iterations of this fit
        if not fit.converged:
            record_warning(self, f"L-BFGS did not converge at C = {C:.6g} in {self.max_iter} iterations "
                                 f"(tol {self.tol:g}; {fit.message}); raise max_iter")
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
        Xn = l2_normalize(X.astype(np.float64))  # normalized in float64: float32 input fits the same rows
        start = self._text_start(n_classes)
        val = None if self.C is not None else check_validation_pair(X_val, y_val, X.shape[1], self.classes_)
        if self.refit_on_val and self.C is None and val is None:
            raise InputError("refit_on_val=True needs a validation split (X_val, y_val)")
        self.val_scores_: dict[str, float] | None = None
        if self.C is not None or val is None:
            self.C_ = float(self.default_C if self.C is None else self.C)
            W, b = self._final_fit(self.C_, LogisticProblem(Xn, y, n_classes), n_classes, start)
        else:
            Xv, yv = l2_normalize(val[0].astype(np.float64)), val[1]
            W, b = self._search(LogisticProblem(Xn, y, n_classes), Xv, yv, n_classes, start)
            if self.refit_on_val:
                n_train = y.size
                X_all, y_all = np.concatenate([Xn, Xv]), np.concatenate([y, yv])
                self.C_ = self.C_ * n_train / y_all.size
                W, b = self._final_fit(self.C_, LogisticProblem(X_all, y_all, n_classes), n_classes, start)
        self.coef_, self.intercept_ = W, b
        self.n_features_in_ = int(X.shape[1])
        return self

    def _search(self, problem: LogisticProblem, Xv: np.ndarray, yv: np.ndarray, n_classes: int,
                start: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """The CLIP paper's search, every visited C scored by a converged fit; sets C_ and val_scores_."""
        scores: dict[float, tuple[int, float]] = {}  # C -> (correct validation rows, validation NLL)
        fits: dict[float, LogisticFit] = {}  # as fitted: a binary model keeps its single row
        predictions: dict[float, np.ndarray] = {}  # C -> predicted validation classes

        n, columns = problem.X.shape
        settles = n * columns * problem.n_outputs >= SETTLE_WORK and yv.size <= SETTLE_VALIDATION_ROWS * n
        settle = Settle(Xv) if settles else None

        def score(c: float) -> None:
            W, b = self._full(fits[c], n_classes)
            logits = Xv @ W.T + b
            predictions[c] = np.argmax(logits, axis=1)
            correct = int(np.count_nonzero(predictions[c] == yv))
            scores[c] = correct, float(-np.mean(log_softmax(logits)[np.arange(yv.size), yv]))

        def visit(c: float, init: tuple[np.ndarray, np.ndarray] | None) -> LogisticFit:
            if c not in fits:
                starts = init if init is None or len(fits) < 2 else [init, *path_starts(c)]
                fits[c] = self._fit(c, problem, starts, settle)
                score(c)
            return fits[c]

        def path_starts(c: float) -> list[tuple[np.ndarray, np.ndarray]]:
            """The fitted path's value at c, linear in log C from the two fitted C nearest to c
            (interpolated between the nearest on each side where both exist)."""
            t = np.log(c)
            below = sorted((x for x in fits if x < c), key=lambda x: -x)
            above = sorted(x for x in fits if x > c)
            if below and above:
                a, b = below[0], above[0]
            else:
                a, b = (below if below else above)[:2]
            u = (t - np.log(a)) / (np.log(b) - np.log(a))
            Fa, Fb = fits[a], fits[b]
            return [((1 - u) * Fa.coef + u * Fb.coef, (1 - u) * Fa.intercept + u * Fb.intercept)]

        init = start
        for c in progress(list(COARSE_GRID), "linear probe C search"):  # increasing C, each from the last
            fit = visit(c, init)
            init = fit.coef, fit.intercept
        # the binary search around the peak, on exponents j of C = 10^(j / 8) (the final lattice)
        lowest, highest = (round(8 * np.log10(c)) for c in C_RANGE)
        j = round(8 * np.log10(best_by_rule(list(COARSE_GRID), scores)))
        for step in (round(8 * s) for s in HALVING_STEPS):
            centre = j
            around = [i for i in (centre - step, centre, centre + step) if lowest <= i <= highest]
            near = fits[10.0 ** (centre / 8)]
            for i in around:
                visit(10.0 ** (i / 8), (near.coef, near.intercept))
            j = round(8 * np.log10(best_by_rule([10.0 ** (i / 8) for i in around], scores)))
        ordered = sorted(scores)
        self.C_ = 10.0 ** (j / 8)
        settled = fits[self.C_]
        if settled.settled:  # the model: the chosen C's fit, on to tol
            fits[self.C_] = self._fit(self.C_, problem, (settled.coef, settled.intercept))
            fits[self.C_].n_iter += settled.n_iter
            score(self.C_)
        unconverged = [c for c in ordered if not (fits[c].converged or fits[c].settled)]
        if unconverged:
            listed = ", ".join(f"{c:.3g}" for c in unconverged[:5]) + (" ..." if len(unconverged) > 5 else "")
            record_warning(self, f"{len(unconverged)} of {len(ordered)} search fits did not converge in "
                                 f"max_iter = {self.max_iter} iterations (tol {self.tol:g}; C = {listed}); their "
                                 f"scores, and the choice, may not be the converged ones: raise max_iter")
        n_val = yv.size
        self.val_scores_ = {repr(c): scores[c][0] / n_val for c in ordered}
        self.n_iter_ = fits[self.C_].n_iter
        warn_on_grid_edge(self, "C", ordered, self.C_, "the search covers 1e-6 .. 1e6")
        rivals = [c for c in ordered if abs(np.log10(c / self.C_)) >= 1 - 1e-9
                  and scores[c][0] >= scores[self.C_][0] - 1 and np.any(predictions[c] != predictions[self.C_])]
        if rivals:
            rival = max(rivals, key=lambda c: (scores[c][0], abs(np.log10(c / self.C_))))
            decades = abs(np.log10(rival / self.C_))
            record_warning(self, f"the choice C = {self.C_:.3g} (validation accuracy "
                                 f"{scores[self.C_][0]}/{n_val}) is a near-tie: C = {rival:.3g}, "
                                 f"{decades:.3g} decades away, scores {scores[rival][0]}/{n_val} "
                                 f"({len(rivals)} value(s) a decade or more away predict differently within one "
                                 f"validation row); "
                                 f"a larger validation split would settle it")
        return self._full(fits[self.C_], n_classes)

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits x_n W^T + b, (n, C)."""
        self._check_fitted()
        Xn = l2_normalize(check_features(X, n_features=self.n_features_in_, estimator=self))
        logits = Xn @ self.coef_.T.astype(Xn.dtype)
        logits += self.intercept_.astype(Xn.dtype)
        return logits

"""Gaussian discriminant analysis on CLIP features (Wang et al., "A Hard-to-Beat Baseline for
Training-free CLIP-based Adaptation", ICLR 2024; official code github.com/mrflogs/ICLR24)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from solvers._base.checks import (
    check_class_counts,
    check_features,
    check_labels,
    check_target,
    check_text_weights,
    check_validation_pair,
    encode_labels,
    resolve_classes,
)
from solvers._base.fit_warnings import record_warning, start_warnings, warn_on_grid_edge
from solvers._base.normalize import l2_normalize
from solvers._base.solver import Solver
from solvers.errors import InputError, UnavailableMethodError
from solvers.few_shot.cholesky_lapack import pocon_upper, potrf_upper, potri_upper, potrs_upper
from solvers.few_shot.sufficient_statistics import ClassStatistics
from solvers.model_selection.validation import select_by_accuracy
from solvers.zero_shot.zero_shot import zero_shot_logits

ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
COVARIANCES = ("ks", "ledoit_wolf", "oas", "empirical")


def _pinv_symmetric(A: np.ndarray) -> np.ndarray:
    """Moore-Penrose pseudo-inverse of a symmetric PSD matrix through its eigendecomposition."""
    w, V = np.linalg.eigh(A)
    keep = w > w.max() * A.shape[0] * np.finfo(np.float64).eps
    return (V[:, keep] / w[keep]) @ V[:, keep].T


# Below this reciprocal condition number (LAPACK's 1-norm estimate from the Cholesky factor)
# a Cholesky inverse is no longer accurate to ~1e-8, and the pseudo-inverse may drop directions.
CHOLESKY_MIN_RCOND = 1e-8


def _cholesky_factor(A: np.ndarray, overwrite: bool = False) -> np.ndarray | None:
    """The upper Cholesky factor of symmetric ``A`` (LAPACK ``potrf`` through ``cholesky_lapack``,
    Fortran-ordered float64) when A is positive definite and well conditioned (LAPACK's ``pocon``
    estimate at least ``CHOLESKY_MIN_RCOND``), else None. ``overwrite``: computed in A itself
    when A is Fortran-ordered float64 (A is then lost, also when None is returned)."""
    A = np.asarray(A, dtype=np.float64)
    anorm = float(np.abs(A).sum(axis=0).max())
    factor, info = potrf_upper(A, overwrite=overwrite)
    if info != 0:
        return None
    rcond, info = pocon_upper(factor, anorm)
    if info != 0 or not rcond >= CHOLESKY_MIN_RCOND:
        return None
    return factor


def _inverse_of_factor(factor: np.ndarray) -> np.ndarray:
    """inv(U^T U) from the upper Cholesky factor U of ``_cholesky_factor`` (``potri``, computed in
    ``factor`` itself), both triangles filled. ``potri`` fails only on an exactly zero pivot (which
    a factor of ``_cholesky_factor`` never has), before writing: then the pseudo-inverse of U^T U."""
    inverse, info = potri_upper(factor)
    if info != 0:
        upper = np.triu(inverse)
        return _pinv_symmetric(upper.T @ upper)
    _mirror_upper(inverse)  # potri fills the upper triangle only
    return inverse


def _inv_symmetric(A: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric PSD matrix: from its Cholesky factor (LAPACK ``potrf`` + ``potri``
    through ``cholesky_lapack``, n^3 flops against 4 n^3 / 3 for an eigendecomposition and 7 n^3 / 3
    for ``cho_solve`` with the identity; timing in bench/RESULTS.md) when A is positive definite
    and well conditioned, where it equals the pseudo-inverse up to rounding; otherwise the exact
    eigendecomposition pseudo-inverse of ``_pinv_symmetric`` (singular or near-singular A)."""
    factor = _cholesky_factor(A)
    if factor is None:
        return _pinv_symmetric(np.asarray(A, dtype=np.float64))
    return _inverse_of_factor(factor)


def _mirror_upper(A: np.ndarray, block: int = 64) -> None:
    """Copy the upper triangle of square ``A`` onto its lower one, in place, tile by tile (a
    transposed copy in cache-sized tiles, not one strided pass over the whole matrix)."""
    d = A.shape[0]
    for start in range(0, d, block):
        A[start:start + block, :start] = A[:start, start:start + block].T
        tile = A[start:start + block, start:start + block]
        lower = np.tril_indices(tile.shape[0], -1)
        tile[lower] = tile.T[lower]


def shrinkage_precision(scatter: np.ndarray, n_samples: int) -> np.ndarray:
    """The official GDA ("KS") precision P = D * pinv((N-1) S + trace(S) I), S = scatter / (N-1).

    With trace(S) > 0 the matrix is positive definite with condition number at most N, so the
    pseudo-inverse is its inverse, computed by a Cholesky solve (``_inv_symmetric``)."""
    return scatter.shape[0] * _inv_symmetric(_shrunk_scatter(scatter, n_samples))


def _shrunk_scatter(scatter: np.ndarray, n_samples: int) -> np.ndarray:
    """(N-1) S + trace(S) I of ``shrinkage_precision``: the scatter plus trace(scatter) / (N-1) on the diagonal."""
    trace_s = np.trace(scatter) / max(n_samples - 1, 1)
    return scatter + trace_s * np.eye(scatter.shape[0])


FIT_BLOCK_ROWS = 16384

# The validation rows' zero-shot logits of the last alpha search: (rows, weights, logits). Fits of
# one store's cells (a sweep) search alpha on the same validation rows and text weights; the
# entry is used only when both equal the new ones, element by element.
_LAST_ZERO_SHOT: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


# The validation rows of the last alpha search as given (a copy) and normalized (read-only).
_LAST_NORMALIZED: tuple[np.ndarray, np.ndarray] | None = None


def _normalized_rows(X: np.ndarray) -> np.ndarray:
    """``l2_normalize(X)`` (read-only), or the previous call's when ``X`` equals the previous
    call's rows in shape, dtype and every element (one comparison pass instead of a norm pass,
    a division pass and a new array). The rows are kept as a copy: the caller's array may change."""
    global _LAST_NORMALIZED
    last = _LAST_NORMALIZED
    if last is not None and last[0].shape == X.shape and last[0].dtype == X.dtype and np.array_equal(last[0], X):
        return last[1]
    Xn = l2_normalize(X)
    Xn.setflags(write=False)
    _LAST_NORMALIZED = (np.array(X, copy=True), Xn)
    return Xn


def _zero_shot_of_rows(Xn: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``Xn @ M.T`` (read-only), or the previous call's product when ``Xn`` and ``M`` equal the
    previous call's arrays in shape, dtype and every element (an O(n D) comparison against the
    O(n D C) product; none for rows that are the previous call's read-only array of
    ``_normalized_rows``). The arrays are kept, not copied: the callers pass arrays they made."""
    global _LAST_ZERO_SHOT
    last = _LAST_ZERO_SHOT
    if last is not None:
        rows, weights, logits = last
        same_rows = rows is Xn and not Xn.flags.writeable and Xn.base is None
        if (rows.shape == Xn.shape and rows.dtype == Xn.dtype and weights.shape == M.shape
                and weights.dtype == M.dtype and np.array_equal(weights, M)
                and (same_rows or np.array_equal(rows, Xn))):
            return logits
    logits = Xn @ M.T
    logits.setflags(write=False)
    _LAST_ZERO_SHOT = (Xn, M, logits)
    return logits


class GDA(Solver):
    """Gaussian discriminant analysis with a shared, shrunk covariance (Wang et al., ICLR 2024).

    Class means mu_k, shared precision P (``covariance``: "ks" = the paper's
    D * pinv((N-1) S + tr(S) I); "ledoit_wolf" / "oas" = scikit-learn shrinkage estimators of the
    within-class covariance; "empirical" = pinv of the MLE S = scatter / N).
    W = mu P, b_k = log pi_k - 1/2 mu_k P mu_k^T (``priors`` "uniform" or "empirical").
    With ``text_weights``: logits = logit_scale * x T^T + alpha * (x W^T + b); otherwise
    logits = x W^T + b. Labels may be any class labels (``classes_``; with ``text_weights`` one
    per bank row, named by ``classes``, default range(C)). ``alpha=None`` picks alpha from
    ``alphas`` by validation accuracy when X_val/y_val are given, else uses ``default_alpha``
    (1.0). Rows are L2-normalized as in the official code (``normalize=False`` keeps raw
    features, e.g. for non-CLIP Gaussian data).

    Zero within-class scatter (one shot per class) makes every estimator's precision zero and
    the GDA logits equal; the precision then falls back to the identity (nearest class mean),
    ``covariance_fallback_ = "identity"``, with a warning. An alpha chosen on the edge of
    ``alphas`` warns too; both are listed in ``fit_warnings_``.
    """

    # the running sufficient statistics of partial_fit
    stat_counts_: np.ndarray
    stat_sums_: np.ndarray
    stat_scatter_: np.ndarray
    _state_arrays: tuple[str, ...] = ("means_", "precision_", "coef_", "intercept_", "priors_")
    _state_scalars: tuple[str, ...] = ("alpha_", "val_scores_")

    def __init__(self, text_weights: np.ndarray | None = None, n_classes: int | None = None,
                 classes: list | np.ndarray | None = None, alpha: float | None = None,
                 alphas: tuple[float, ...] = ALPHAS,
                 default_alpha: float = 1.0, covariance: str = "ks", priors: str = "uniform",
                 normalize: bool = True, logit_scale: float = 100.0,
                 temperature: float = 1.0) -> None:
        self.text_weights = text_weights
        self.n_classes = n_classes
        self.classes = classes
        self.alpha = alpha
        self.alphas = alphas
        self.default_alpha = default_alpha
        self.covariance = covariance
        self.priors = priors
        self.normalize = normalize
        self.logit_scale = logit_scale
        self.temperature = temperature

    def _check_params(self) -> np.ndarray | None:
        if self.covariance not in COVARIANCES:
            raise InputError(f"covariance must be one of {COVARIANCES}, got {self.covariance!r}")
        if self.priors not in ("uniform", "empirical"):
            raise InputError(f"priors must be 'uniform' or 'empirical', got {self.priors!r}")
        return None if self.text_weights is None else check_text_weights(self.text_weights)

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> GDA:
        """Fit class means and the shared precision on (X, y); pick alpha on (X_val, y_val)."""
        T = self._check_params()
        for name in ("stat_counts_", "stat_sums_", "stat_scatter_", "partial_classes_"):
            self.__dict__.pop(name, None)  # a full fit starts the incremental statistics afresh
        X = check_features(X, n_features=None if T is None else T.shape[1])
        y = self._fit_labels(y, X.shape[0], None if T is None else T.shape[0])
        C = self.classes_.size
        check_class_counts(y, C, classes=self.classes_)
        # Statistics are merged over row blocks: the same numbers as one pass, with temporaries
        # of one block instead of several copies of X. The first block's statistics are taken as
        # they are (merging them into zeros would only add 0.0 to each entry).
        stats: ClassStatistics | None = None
        for start in range(0, X.shape[0], FIT_BLOCK_ROWS):
            chunk = ClassStatistics.of_chunk(X[start:start + FIT_BLOCK_ROWS], y[start:start + FIT_BLOCK_ROWS], C,
                                             self.normalize)
            stats = chunk if stats is None else stats.merge(chunk)
        if stats is None:
            stats = ClassStatistics.empty(C, X.shape[1])
        centred = None
        if self.covariance in ("ledoit_wolf", "oas"):
            Xn = l2_normalize(X) if self.normalize else X
            centred = (Xn - stats.means.astype(Xn.dtype)[y]).astype(np.float64)
        return self._fit_statistics(stats, X_val, y_val, centred, classes=self.classes_)

    @property
    def partial_fit(self) -> Callable[..., GDA]:
        """``partial_fit`` exists for covariance "ks" and "empirical" only (Ledoit-Wolf and OAS
        need every row at once): elsewhere it is absent to ``hasattr``, as scikit-learn's
        ``available_if`` makes it, and calling it is an ``UnavailableMethodError`` (an
        InputError) naming why."""
        if self.covariance not in ("ks", "empirical"):
            raise UnavailableMethodError(f"GDA(covariance={self.covariance!r}) has no partial_fit: the estimator "
                                         "needs all feature rows at once; partial_fit supports 'ks' and 'empirical'")
        return self._partial_fit

    def _partial_fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
                     y_val: np.ndarray | None = None, *, classes: list | np.ndarray | None = None) -> GDA:
        """Add rows, and classes, by merging their sufficient statistics (class-incremental GDA).

        Labels are indices 0, 1, ... unless a class list is known: ``classes`` (here, on the first
        call, as scikit-learn's ``partial_fit``; or the constructor's), in the order classes arrive;
        labels are mapped onto it. Labels may name classes not seen before (new classes extend
        the class range to the largest index + 1, ``classes_`` the list's first classes; every
        class below it must have rows by the end of this call). No row is kept: counts,
        sums and the within-class scatter merge exactly (Chan et al.), so after any sequence of
        calls the model equals ``fit`` on the union of the rows (alpha aside, which is chosen on
        this call's validation pair, else fixed). With ``text_weights`` of C_T rows the zero-shot
        term uses the rows of the classes seen so far. Covariance "ks" or "empirical" only.
        """
        T = self._check_params()
        if self.covariance not in ("ks", "empirical"):
            raise InputError(f"covariance={self.covariance!r} needs all feature rows at once; "
                             "partial_fit supports 'ks' and 'empirical'")
        previous = getattr(self, "stat_counts_", None)
        if previous is not None:
            self._check_n_features(X)
        X = check_features(X, n_features=None if T is None else T.shape[1])
        known = getattr(self, "partial_classes_", None) if previous is not None else None
        if classes is not None:
            if known is not None and not np.array_equal(np.asarray(classes), np.asarray(known)):
                raise InputError("classes differ from the list given on the first partial_fit call")
            known = resolve_classes(classes, None, None if T is None else T.shape[0])
        elif known is None and self.classes is not None:
            known = resolve_classes(self.classes, None, None if T is None else T.shape[0])
        if known is None:
            y = check_labels(y, X.shape[0], None if T is None else T.shape[0])
        else:
            y = encode_labels(check_target(y, X.shape[0], owner=type(self).__name__), known)
            self.partial_classes_ = np.asarray(known)
        if previous is None:
            stats = ClassStatistics.empty(0, X.shape[1])
        else:
            stats = ClassStatistics(np.asarray(previous, np.int64).copy(), np.asarray(self.stat_sums_, np.float64),
                                    np.asarray(self.stat_scatter_, np.float64))
        C = max(stats.counts.size, int(y.max()) + 1)
        if self.n_classes is not None and C > int(self.n_classes):
            raise InputError(f"y has label {C - 1} but n_classes is {self.n_classes}")
        stats = stats.grow(C)
        for start in range(0, X.shape[0], FIT_BLOCK_ROWS):
            block = X[start:start + FIT_BLOCK_ROWS]
            stats.update(block, y[start:start + FIT_BLOCK_ROWS], self.normalize)
        check_class_counts(np.repeat(np.arange(C), stats.counts), C)
        self.stat_counts_, self.stat_sums_, self.stat_scatter_ = stats.counts, stats.sums, stats.scatter
        self.classes_ = np.arange(C) if known is None else np.asarray(known)[:C]
        return self._fit_statistics(stats, X_val, y_val, None, classes=self.classes_)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Base state plus, after ``partial_fit``, the sufficient statistics (``stat_*_``), so a
        loaded model can take further sessions."""
        arrays, params = super().get_state()
        if getattr(self, "stat_counts_", None) is not None:
            for name in ("stat_counts_", "stat_sums_", "stat_scatter_"):
                arrays[name] = np.asarray(getattr(self, name))
            known = getattr(self, "partial_classes_", None)
            if known is not None:  # the class list of partial_fit, as JSON when not numeric
                known = np.asarray(known)
                if known.dtype.kind in "biuf":
                    arrays["partial_classes_"] = known
                else:
                    params["fitted"]["partial_classes_"] = known.tolist()
        return arrays, params

    def _seen_text(self) -> np.ndarray:
        """The text weights of the classes the model has (all rows, unless partial_fit has seen fewer)."""
        return np.asarray(self.text_weights)[: self.coef_.shape[0]]

    @classmethod
    def from_statistics(cls, counts: np.ndarray, sums: np.ndarray, scatter: np.ndarray, *,
                        X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
                        **params: Any) -> GDA:
        """Fit from sufficient statistics (see ``solvers.few_shot.sufficient_statistics``) instead of rows.

        ``sums`` and ``scatter`` must come from features prepared like ``fit`` does (L2-normalized
        rows when ``normalize=True``). Supports covariance "ks" and "empirical" ("ledoit_wolf"
        and "oas" need the rows and are only available through ``fit``).
        """
        solver = cls(**params)
        T = solver._check_params()
        if solver.covariance not in ("ks", "empirical"):
            raise InputError(f"covariance={solver.covariance!r} needs the feature rows; "
                             "from_statistics supports 'ks' and 'empirical'")
        counts = np.asarray(counts, dtype=np.int64)
        stats = ClassStatistics(counts, np.asarray(sums, np.float64), np.asarray(scatter, np.float64))
        if T is not None and stats.sums.shape[1] != T.shape[1]:
            raise InputError(f"sums has {stats.sums.shape[1]} features but text_weights has {T.shape[1]}")
        check_class_counts(np.repeat(np.arange(counts.size), counts), counts.size)
        return solver._fit_statistics(stats, X_val, y_val, None)

    def _precision(self, stats: ClassStatistics,
                   centred: np.ndarray | None) -> tuple[np.ndarray | None, tuple[np.ndarray, float] | None]:
        """The shared precision P, as (P, None), or as (None, (U, scale)) with P = scale * inv(U^T U)
        when the estimator's matrix has a well-conditioned Cholesky factor U ("ks", "empirical"):
        the fit then solves with U for the weights and forms P only when ``precision_`` is read."""
        n = int(stats.counts.sum())
        self.covariance_fallback_ = None
        spread = float(np.einsum("c,cd,cd->", stats.counts, stats.means, stats.means))
        if np.trace(stats.scatter) <= 1e-12 * max(spread, np.finfo(np.float64).tiny):
            # Zero within-class scatter (one row per class, or duplicated rows): every estimator
            # gives P = 0 and equal logits (chance). The identity covariance is the sound
            # fallback: logits x mu_k^T - 1/2 ||mu_k||^2, i.e. the nearest class mean.
            self.covariance_fallback_ = "identity"
            record_warning(self, f"the within-class scatter of the {n} training rows is zero (one row per class?): "
                                 "the covariance falls back to the identity (nearest class mean)")
            return np.eye(stats.scatter.shape[0]), None
        if self.covariance in ("ks", "empirical"):
            scale = float(stats.scatter.shape[0]) if self.covariance == "ks" else 1.0
            factor = _cholesky_factor(self._estimator_matrix(stats, n), overwrite=True)
            if factor is None:  # singular or ill-conditioned: the pseudo-inverse, as _inv_symmetric takes
                return scale * _pinv_symmetric(self._estimator_matrix(stats, n)), None
            return None, (factor, scale)
        from sklearn.covariance import ledoit_wolf, oas

        estimator = ledoit_wolf if self.covariance == "ledoit_wolf" else oas
        cov, _ = estimator(centred, assume_centered=True)
        return _inv_symmetric(cov), None

    def _estimator_matrix(self, stats: ClassStatistics, n: int) -> np.ndarray:
        """The matrix whose (pseudo-)inverse, times D for "ks", is the precision, Fortran-ordered
        float64: "ks" the scatter plus trace(scatter) / (N-1) on the diagonal (``_shrunk_scatter``),
        "empirical" scatter / N; the same numbers as those expressions, in one new array."""
        A = np.array(stats.scatter, dtype=np.float64, order="F")
        if self.covariance == "ks":
            diagonal = np.diag_indices(A.shape[0])
            A[diagonal] += np.trace(stats.scatter) / max(n - 1, 1)
        else:
            A /= n
        return A

    @property
    def precision_(self) -> np.ndarray:
        """The shared precision matrix (D, D); after a fit through a Cholesky factor, formed from it
        (``potri``) on first read, the same numbers as ``shrinkage_precision``."""
        P = self.__dict__.get("_precision_matrix")
        if P is None:
            factored = self.__dict__.pop("_precision_factor", None)
            if factored is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute 'precision_'")
            factor, scale = factored
            P = self.__dict__["_precision_matrix"] = scale * _inverse_of_factor(factor)
        return P

    @precision_.setter
    def precision_(self, value: np.ndarray) -> None:
        self.__dict__.pop("_precision_factor", None)
        self.__dict__["_precision_matrix"] = value

    def _fit_statistics(self, stats: ClassStatistics, X_val: np.ndarray | None,
                        y_val: np.ndarray | None, centred: np.ndarray | None,
                        classes: np.ndarray | None = None) -> GDA:
        """The model from class statistics; ``classes`` are the labels of their rows (default:
        the ``classes`` parameter, else range(C))."""
        C, D = stats.sums.shape
        means = stats.means
        start_warnings(self)
        P, factored = self._precision(stats, centred)
        priors = np.full(C, 1.0 / C) if self.priors == "uniform" else stats.counts / stats.counts.sum()
        if P is not None:
            # the identity fallback: means @ I is means, entry for entry (x * 1 plus zeros)
            W = means.copy() if self.covariance_fallback_ == "identity" else means @ P
            self.precision_ = P
        else:  # W = means @ (scale inv(U^T U)) by two triangular solves: no inverse, no D x D product
            assert factored is not None
            factor, scale = factored
            solution, info = potrs_upper(factor, means.T)
            if info != 0:
                raise AssertionError(f"LAPACK potrs refused its arguments (info {info})")
            W = scale * solution.T
            self.__dict__.pop("_precision_matrix", None)
            self.__dict__["_precision_factor"] = factored
        self.means_, self.priors_ = means, priors
        self.coef_ = W
        self.intercept_ = np.log(priors) - 0.5 * np.einsum("cd,cd->c", W, means)
        if classes is None:
            self._set_classes(C, D)
        else:
            self.classes_, self.n_features_in_ = np.asarray(classes), int(D)
        self.val_scores_: list[float] | None = None
        if self.text_weights is None:
            self.alpha_ = None
        elif self.alpha is not None:
            self.alpha_ = float(self.alpha)
        else:
            val = check_validation_pair(X_val, y_val, D, self.classes_)
            if val is None:
                self.alpha_ = float(self.default_alpha)
            else:
                Xv, yv = val
                zs, gda = self._logit_parts(Xv, checked=True)
                buffer = np.empty_like(gda)

                def logits_for(a: float) -> np.ndarray:  # zs + a * gda, in one reused buffer
                    if np.result_type(zs, gda, a) != buffer.dtype:  # e.g. a NumPy float64 alpha
                        return zs + a * gda
                    np.multiply(gda, a, out=buffer)
                    return np.add(zs, buffer, out=buffer)

                best, scores = select_by_accuracy(list(self.alphas), logits_for, yv)
                self.alpha_, self.val_scores_ = float(best), scores
                warn_on_grid_edge(self, "alpha", self.alphas, self.alpha_, "give wider alphas")
        return self

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        X = check_features(X, n_features=self.n_features_in_, estimator=self)
        return l2_normalize(X) if self.normalize else X

    def _logit_parts(self, X: np.ndarray, checked: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(zero-shot logits, GDA logits) of X, for the validation search: the normalized rows
        times the scaled, normalized text weights (``_zero_shot_of_rows``: reused when the rows
        and weights equal the previous fit's) and times the GDA weights. ``checked``: X comes
        from ``check_validation_pair`` already (not checked a second time)."""
        if not checked:
            X = check_features(X, n_features=self.n_features_in_, estimator=self)
        Xn = _normalized_rows(X) if self.normalize else X
        T = l2_normalize(np.asarray(self._seen_text(), dtype=np.float64))
        gda = Xn @ self.coef_.T.astype(Xn.dtype)
        gda += self.intercept_.astype(Xn.dtype)
        if not self.normalize:  # the zero-shot term takes normalized rows, the GDA term raw ones
            return zero_shot_logits(Xn, T, self.logit_scale), gda
        return _zero_shot_of_rows(Xn, (self.logit_scale * T).astype(Xn.dtype)), gda

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits (n, C): zero-shot + alpha * GDA with text weights, GDA alone without.

        Computed in X's dtype (float32 features: float32 BLAS). Normalized rows enter as
        x_n M^T = (x M^T) / ||x||: the rows' scale is applied to the (n, C) product, so X is
        never copied or cast."""
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_, estimator=self)
        if self.text_weights is None:
            M, b = self.coef_, self.intercept_
        else:
            T = l2_normalize(np.asarray(self._seen_text(), dtype=np.float64))
            M = self.logit_scale * T + self.alpha_ * self.coef_
            b = self.alpha_ * self.intercept_
        logits = X @ M.T.astype(X.dtype)
        if self.normalize:
            norms = np.sqrt(np.einsum("ij,ij->i", X, X))
            norms[norms == 0] = 1
            logits /= norms[:, None]
        logits += b.astype(X.dtype)
        return logits

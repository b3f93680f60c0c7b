"""L2-regularised multinomial logistic regression fitted by SciPy's L-BFGS-B, with scikit-learn's
objective and stopping rule, in whitened variables.

Why not scikit-learn's ``LogisticRegression`` itself: solvers/ does not import scikit-learn (its
import alone takes about a second: bench/RESULTS.md), and scikit-learn fits float32 rows in
float32, where a tight tolerance cannot be met (line searches stall, or the decrease drowns in
rounding); the linear probe needs converged fits (its C search scores every visited C by one).
Here rows, products and sums are float64.

Preconditioning (a change of variables, not of the problem): with x~ = [x, 1] and the weights
Theta = [W, b] (K rows), L-BFGS runs on Theta' = Theta L, where L L^T = S = c X~^T X~ / n + ridge E
(E: the identity without the intercept's entry; c: a fraction of the softmax's mean curvature
at the start),
an approximation of one class's block of the Hessian. CLIP-like features are anisotropic and
share a large mean (which the intercept mirrors), so L-BFGS in the original variables is
ill-conditioned; in Theta' the same objective has the same optimum, reached in fewer
iterations (bench/RESULTS.md). The stopping rule keeps its meaning: the fit stops when the
gradient in the original variables has max |g| <= tol (or the relative decrease of the
objective falls below 64 eps, as scikit-learn's L-BFGS does).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: The preconditioner's c is this fraction of the softmax's mean curvature at the start (the
#: fits' path leads to sharper probabilities, lower curvature; the fraction measured best in
#: bench/RESULTS.md's probe section).
CURVATURE_SCALE = 0.1
#: The softmax's mean curvature at the start is kept at least this fraction of its value at zero
#: weights (a start whose probabilities are all near 0 or 1 would otherwise leave the intercept's
#: direction unscaled). Both constants change iterations only, never the optimum. Where the ridge
#: outweighs c trace(X^T X / n) (small C: a near-isotropic problem) the fit runs in the original
#: variables, as scikit-learn's: there the optimum's logits are tiny and the stopping rule's
#: slack in the intercepts (tol / curvature) would decide predictions, as it does not on that path.
MIN_CURVATURE = 1e-3


@dataclass
class LogisticFit:
    """Weights ``coef`` (K, D) and ``intercept`` (K,) in float64, K = n_classes (1 for two
    classes: scikit-learn's binary model, the logit of class 1 against class 0)."""

    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int
    converged: bool
    message: str


def _objective(X: np.ndarray, y: np.ndarray, n_outputs: int, C: float,
               curvature: list[float] | None = None) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """f(w) = mean cross-entropy + |W|^2 / (2 C n) and its gradient (scikit-learn's scaling of
    C * sum CE + |W|^2 / 2, so its ``tol`` means the same); w = [W.ravel(), b]. X is float64.
    With a ``curvature`` list, each evaluation appends the mean of p (1 - p) over rows and
    outputs (the softmax's mean curvature, for the preconditioner)."""
    n, D = X.shape
    rows = np.arange(n)
    ridge = 1.0 / (C * n)
    binary = n_outputs == 1
    target = y.astype(np.float64) if binary else np.empty(0)  # used by the binary branch only

    def value_and_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
        W = w[:n_outputs * D].reshape(n_outputs, D)
        b = w[n_outputs * D:]
        Z = X @ W.T
        Z += b
        if binary:  # class 0's logit is fixed at 0: CE = log(1 + e^z) - t z
            z = Z[:, 0]
            loss = float(np.logaddexp(0, z).sum() - np.dot(target, z))
            residual = np.reciprocal(1 + np.exp(-z))  # sigmoid(z) - t
            if curvature is not None:
                curvature.append(float(np.mean(residual * (1 - residual))))  # p (1 - p), sigmoid(z) = p
            residual -= target
            Z = residual[:, None]
        else:
            picked = Z[rows, y].copy()
            top = Z.max(axis=1)
            Z -= top[:, None]
            np.exp(Z, out=Z)
            total = Z.sum(axis=1)
            loss = float(np.log(total).sum() + top.sum() - picked.sum())
            Z /= total[:, None]  # softmax - one-hot
            if curvature is not None:
                curvature.append(float(np.mean(Z * (1 - Z))))
            Z[rows, y] -= 1
        grad_W = (Z.T @ X) / n + ridge * W
        grad_b = Z.sum(axis=0) / n
        value = loss / n + 0.5 * ridge * float(np.dot(W.ravel(), W.ravel()))
        return value, np.concatenate([grad_W.ravel(), grad_b])

    return value_and_gradient


class LogisticProblem:
    """One training set (rows ``X``, classes ``y`` in 0 .. n_classes-1) fitted at any C: the rows
    in float64 and their Gram matrix (for the preconditioner) are computed once and shared by
    every fit, as the linear probe's C search needs.

    With fewer rows than dimensions (n < D) the fits run in the rows' span: X = X_r V^T (V an
    orthonormal basis of the rows, D x n), W = W_r V^T. The optimum's W lies in that span (a
    component outside it adds to the penalty and not to the fit), so the problem in W_r (n
    columns instead of D) has the same optimum; a start is projected onto the span, and the stop
    tests the gradient in the original D columns."""

    def __init__(self, X: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        X64 = np.ascontiguousarray(X, dtype=np.float64)
        self.y = np.asarray(y)
        self.n_outputs = 1 if n_classes == 2 else n_classes
        self.n_features = X64.shape[1]
        self._basis: np.ndarray | None = None
        if X64.shape[0] < X64.shape[1]:
            self._basis, R = np.linalg.qr(X64.T)  # X^T = V R: X = R^T V^T
            X64 = np.ascontiguousarray(R.T)
        self.X = X64
        n, D = self.X.shape
        gram = np.empty((D + 1, D + 1))
        gram[:D, :D] = self.X.T @ self.X
        gram[:D, D] = gram[D, :D] = self.X.sum(axis=0)
        gram[D, D] = n
        self._gram = gram / n  # X~^T X~ / n, X~ = [X, 1]

    def fit(self, C: float, start: tuple[np.ndarray, np.ndarray] | list[tuple[np.ndarray, np.ndarray]] | None = None,
            tol: float = 1e-6, max_iter: int = 1000) -> LogisticFit:
        """Fit C * sum_i CE(W x_i + b, y_i) + |W|^2 / 2 (b unpenalised) from ``start`` (zeros if
        None; of a list of starts, the one of lowest objective), in float64 and whitened variables
        (module docstring), stopping when the original variables' gradient has max |g| <= tol, the
        relative decrease falls below 64 eps, or after ``max_iter`` iterations (line searches of at
        most 50 steps, as scikit-learn's lbfgs). ``converged`` is False when the fit ended for
        another reason than a tolerance."""
        from scipy.linalg import cholesky, solve_triangular
        from scipy.optimize import minimize

        X, K, V = self.X, self.n_outputs, self._basis
        n, D = X.shape
        if start is None:
            starts = [np.zeros((K, D + 1))]
        else:
            starts = []
            for W, b in [start] if isinstance(start, tuple) else start:
                W = np.asarray(W, np.float64).reshape(K, self.n_features)
                starts.append(np.hstack([W if V is None else W @ V, np.asarray(b, np.float64).reshape(K, 1)]))
        ridge = 1.0 / (C * n)
        curvature: list[float] = []
        objective = _objective(X, self.y, K, C, curvature)
        last: dict[str, bool] = {}

        def original(theta: np.ndarray) -> tuple[float, np.ndarray]:
            """Value and gradient (K, D + 1) before whitening (on the span when n < D); whether the
            original variables' gradient meets tol is remembered for the stop."""
            value, g = objective(np.concatenate([theta[:, :D].ravel(), theta[:, D]]))
            grad = np.hstack([g[:K * D].reshape(K, D), g[K * D:].reshape(K, 1)])
            last["met"] = self._meets(grad, tol)
            return value, grad

        def whitened(v: np.ndarray) -> tuple[float, np.ndarray]:
            if v is first or np.array_equal(v, first):  # SciPy's first call: the start, evaluated below
                value, grad = at_start
            else:
                value, grad = original(solve_triangular(L, v.reshape(K, D + 1).T, lower=True, trans="T").T)
            return value, solve_triangular(L, grad.T, lower=True).T.ravel()  # Theta = Theta' L^-1, G' = G L^-T

        def stop_on_original_gradient(intermediate_result: object) -> None:
            if last["met"]:
                raise StopIteration

        tried = []
        for theta in starts:
            value, grad = original(theta)
            tried.append((value, theta, grad, last["met"], curvature[-1]))
        value, theta, grad, met, curv = min(tried, key=lambda t: t[0])
        shift = float(theta[:, D].mean())
        at_start = value, grad
        last["met"] = met
        if met:
            return self._result(theta, 0, True, "CONVERGENCE: the start meets tol")
        at_zero = 0.25 if K == 1 else (1 - 1 / K) / K  # the mean curvature at zero weights
        c = CURVATURE_SCALE * max(curv, MIN_CURVATURE * at_zero)
        options = {"maxls": 50, "gtol": 0.0, "ftol": 64 * np.finfo(float).eps, "maxiter": int(max_iter)}
        if c * np.trace(self._gram[:D, :D]) < ridge:  # the ridge dominates: L-BFGS as scikit-learn runs it
            def plain(w: np.ndarray) -> tuple[float, np.ndarray]:
                value, grad = original(np.hstack([w[:K * D].reshape(K, D), w[K * D:].reshape(K, 1)]))
                return value, np.concatenate([grad[:, :D].ravel(), grad[:, D]])

            # on the original variables SciPy's own test is the rule; on the span, the callback's
            result = minimize(plain, np.concatenate([theta[:, :D].ravel(), theta[:, D]]), jac=True,
                              method="L-BFGS-B", callback=None if V is None else stop_on_original_gradient,
                              options={**options, "gtol": float(tol) if V is None else 0.0})
            theta = np.hstack([result.x[:K * D].reshape(K, D), result.x[K * D:].reshape(K, 1)])
        else:
            S = c * self._gram
            S[np.arange(D), np.arange(D)] += ridge
            L = cholesky(S, lower=True)
            first = (theta @ L).ravel()
            result = minimize(whitened, first, jac=True, method="L-BFGS-B",
                              callback=stop_on_original_gradient, options=options)
            theta = self._recentre(solve_triangular(L, result.x.reshape(K, D + 1).T, lower=True, trans="T").T, shift)
        if result.status == 99:  # the callback's StopIteration: the original gradient met tol
            return self._result(theta, int(result.nit), True, "CONVERGENCE: max |gradient| <= tol")
        return self._result(theta, int(result.nit), bool(result.status == 0), str(result.message))
    def _meets(self, grad: np.ndarray, tol: float) -> bool:
        """Whether the gradient in the original variables, [G_r V^T, g_b] on the span, has max |g|
        <= tol. A row of G_r V^T has the 2-norm of G_r's row (V orthonormal), so its largest entry
        lies between that norm / sqrt(D) and the norm: the product is formed only in between."""
        if self._basis is None:
            return bool(np.abs(grad).max() <= tol)
        if np.abs(grad[:, -1]).max() > tol:
            return False
        norm = float(np.sqrt(np.square(grad[:, :-1]).sum(axis=1).max()))
        if norm <= tol or norm / np.sqrt(self.n_features) > tol:
            return norm <= tol
        return bool(np.abs(grad[:, :-1] @ self._basis.T).max() <= tol)

    @staticmethod
    def _recentre(theta: np.ndarray, shift: float) -> np.ndarray:
        """With K >= 3 outputs, adding a constant to every intercept leaves the objective unchanged;
        L-BFGS in the original variables keeps their mean at the start's (its gradient sums to zero
        over the classes), the whitened steps do not: restore it, the start's optimum."""
        if theta.shape[0] > 1:
            theta[:, -1] += shift - theta[:, -1].mean()
        return theta

    def _result(self, theta: np.ndarray, n_iter: int, converged: bool, message: str) -> LogisticFit:
        W = theta[:, :-1] if self._basis is None else theta[:, :-1] @ self._basis.T
        return LogisticFit(np.array(W), theta[:, -1].copy(), n_iter, converged, message)


def fit_logistic(X: np.ndarray, y: np.ndarray, n_classes: int, C: float,
                 start: tuple[np.ndarray, np.ndarray] | None = None, tol: float = 1e-6,
                 max_iter: int = 1000) -> LogisticFit:
    """One fit of ``LogisticProblem(X, y, n_classes)`` at C (see ``LogisticProblem.fit``)."""
    return LogisticProblem(X, y, n_classes).fit(C, start, tol=tol, max_iter=max_iter)

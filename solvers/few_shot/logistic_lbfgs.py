"""L2-regularised multinomial logistic regression fitted by SciPy's L-BFGS-B, with scikit-learn's
objective and stopping rule, in whitened variables.

Why not scikit-learn's ``LogisticRegression`` itself: solvers/ does not import scikit-learn (its
import alone takes about a second: bench/RESULTS.md), and scikit-learn fits float32 rows in
float32, where a tight tolerance cannot be met (line searches stall, or the decrease drowns in
rounding); the linear probe needs converged fits (its C search scores every visited C by one).
Here rows, logits, values and sums are float64, and the stop is tested on the float64 gradient;
on enough rows the two products of an evaluation are float32 products chained from float64
logits (``_objective``, ``FLOAT32_MARGIN``), which cannot decide where a fit stops.

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
#: The gradient's product residual^T X is taken in float32 (the value, logits and softmax in
#: float64) when the float32 rounding it adds, estimated as eps32 rms(x_d) / sqrt(n), is at least
#: this many times below ``tol``; a stop is always tested on the float64 gradient, and a fit whose
#: float32 phase ends short of tol goes on with float64 products.
FLOAT32_MARGIN = 4.0
#: With float32 products, every REFRESH-th evaluation of a fit is float64 (``_objective``), and
#: once the gradient's largest entry is below FINISH x tol the fit goes on in float64 (same L-BFGS
#: run): its last decreases are too small for the chained logits to resolve.
REFRESH = 16
FINISH = 30.0


@dataclass
class LogisticFit:
    """Weights ``coef`` (K, D) and ``intercept`` (K,) in float64, K = n_classes (1 for two
    classes: scikit-learn's binary model, the logit of class 1 against class 0)."""

    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int
    converged: bool
    message: str


def _along(line: tuple | None, W: np.ndarray, b: np.ndarray) -> float | None:
    """t where (W, b) = (W0, b0) + t (dW, db) for ``line`` = (W0, b0, Z0, dW, db, dZ), to
    rounding (a line search's trials x + alpha d, mapped linearly to the original variables);
    None when (W, b) is off that line."""
    if line is None:
        return None
    W0, b0, _, dW, db, _ = line
    d = np.concatenate([dW.ravel(), db])
    e = np.concatenate([(W - W0).ravel(), b - b0])
    norm = float(np.dot(d, d))
    if norm == 0.0:
        return None
    t = float(np.dot(e, d)) / norm
    off = np.abs(e - t * d).max()
    return t if off <= 1e-10 * np.abs(e).max() else None


def _objective(X: np.ndarray, y: np.ndarray, n_outputs: int, C: float,
               curvature: list[float] | None = None, rows32: np.ndarray | None = None,
               memo: dict | None = None) -> Callable[..., tuple[float, np.ndarray]]:
    """f(w) = mean cross-entropy + |W|^2 / (2 C n) and its gradient (scikit-learn's scaling of
    C * sum CE + |W|^2 / 2, so its ``tol`` means the same); w = [W.ravel(), b]. X is float64.
    With a ``curvature`` list, each evaluation appends the mean of p (1 - p) over rows and
    outputs (the softmax's mean curvature, for the preconditioner).

    With ``rows32`` (X in float32) and a ``memo`` dict, both products are taken in float32 (about
    a third of the float64 cost): the logits as the memo's float64 logits, those of the point
    evaluated before, plus X (W - W_0)^T in float32, whose rounding is relative to the step, not
    to the logits; and the gradient's residual^T X. The softmax, the value and the sums stay
    float64. ``exact=True`` (and every ``REFRESH``-th evaluation, which bounds the drift of the
    chained logits) evaluates in float64 and restarts the chain from exact logits."""
    n, D = X.shape
    rows = np.arange(n)
    ridge = 1.0 / (C * n)
    binary = n_outputs == 1
    target = y.astype(np.float64) if binary else np.empty(0)  # used by the binary branch only

    def value_and_gradient(w: np.ndarray, exact: bool = False) -> tuple[float, np.ndarray]:
        W = w[:n_outputs * D].reshape(n_outputs, D)
        b = w[n_outputs * D:]
        fast = rows32 is not None and memo is not None and not exact and 0 < memo.get("chained", REFRESH) < REFRESH
        if fast:
            assert rows32 is not None and memo is not None
            step = _along(memo.get("line"), W, b)
            if step is not None:  # a line search's next trial on the same line: no product
                Z = memo["line"][2] + step * memo["line"][5]
            else:
                Z = (rows32 @ (W - memo["W"]).T.astype(np.float32)).astype(np.float64)
                Z += b - memo["b"]
                memo["line"] = memo["W"], memo["b"], memo["Z"], W - memo["W"], b - memo["b"], Z
                Z = Z + memo["Z"]
        else:
            Z = X @ W.T
            Z += b
        if memo is not None:
            if not fast:
                memo.pop("line", None)
            memo.update(Z=Z.copy(), W=W.copy(), b=b.copy(), chained=memo.get("chained", 0) + 1 if fast else 1,
                        exact=not fast)
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
        if fast:
            assert rows32 is not None
            grad_W = (Z.astype(np.float32).T @ rows32).astype(np.float64)
            grad_W /= n
            grad_W += ridge * W
        else:
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
        # float32 products are used where their rounding in the gradient (about eps32 rms(x_d) / sqrt(n)
        # per entry for residuals in [-1, 1], the largest column rms) stays FLOAT32_MARGIN times below tol
        rms = float(np.sqrt(np.square(X64).mean(axis=0).max()))
        self._float32_error = float(np.finfo(np.float32).eps) * rms / np.sqrt(X64.shape[0])
        self._rows32: np.ndarray | None = None
        # id(coef) of a fit returned -> (coef, its data terms): a later fit started from it takes them
        # instead of evaluating it again
        self._kept: dict[int, tuple[np.ndarray, tuple]] = {}
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
        starts: list[tuple[np.ndarray, tuple | None]] = []
        if start is None:
            starts = [(np.zeros((K, D + 1)), None)]
        else:
            for W, b in [start] if isinstance(start, tuple) else start:
                kept = self._kept.get(id(W))
                data = kept[1] if kept is not None and kept[0] is W else None
                W = np.asarray(W, np.float64).reshape(K, self.n_features)
                starts.append((np.hstack([W if V is None else W @ V, np.asarray(b, np.float64).reshape(K, 1)]), data))
        ridge = 1.0 / (C * n)
        curvature: list[float] = []
        memo: dict = {}
        last: dict[str, bool] = {}
        exact_at: dict = {}
        float32 = FLOAT32_MARGIN * self._float32_error <= tol
        if float32 and self._rows32 is None:
            self._rows32 = X.astype(np.float32)
        objective = _objective(X, self.y, K, C, curvature, self._rows32 if float32 else None, memo if float32 else None)
        phase = {"exact": not float32}

        def original(theta: np.ndarray, exact: bool = False) -> tuple[float, np.ndarray]:
            """Value and gradient (K, D + 1) before whitening (on the span when n < D); whether the
            original variables' float64 gradient meets tol is remembered for the stop (a float32
            evaluation that meets it is repeated in float64 first)."""
            w = np.concatenate([theta[:, :D].ravel(), theta[:, D]])
            value, g = objective(w, exact or phase["exact"])
            met = self._meets(np.hstack([g[:K * D].reshape(K, D), g[K * D:].reshape(K, 1)]), tol)
            if not memo.get("exact", True) and np.abs(g).max() <= FINISH * tol:
                phase["exact"] = True  # the last iterations in float64: their decreases are below float32's reach
            if met and not memo.get("exact", True):
                value, g = objective(w, True)
                met = self._meets(np.hstack([g[:K * D].reshape(K, D), g[K * D:].reshape(K, 1)]), tol)
                phase["exact"] = phase["exact"] or not met  # within float32 reach of tol: float64 from here
            last["met"] = met
            grad = np.hstack([g[:K * D].reshape(K, D), g[K * D:].reshape(K, 1)])
            if memo.get("exact", True):  # the data terms of a float64 evaluation, for a fit that ends here
                W = theta[:, :D]
                exact_at.update(theta=theta, data=(value - 0.5 * ridge * float(np.sum(W * W)), grad - ridge * np.hstack(
                    [W, np.zeros((K, 1))]), curvature[-1]))
            return value, grad

        def whitened(v: np.ndarray) -> tuple[float, np.ndarray]:
            if v is first or np.array_equal(v, first):  # SciPy's first call: the start, evaluated below
                value, grad = at_start
            else:
                value, grad = original(solve_triangular(L, v.reshape(K, D + 1).T, lower=True, trans="T").T)
            return value, solve_triangular(L, grad.T, lower=True).T.ravel()  # Theta = Theta' L^-1, G' = G L^-T

        def plain(w: np.ndarray) -> tuple[float, np.ndarray]:
            if w is first or np.array_equal(w, first):
                value, grad = at_start
            else:
                value, grad = original(np.hstack([w[:K * D].reshape(K, D), w[K * D:].reshape(K, 1)]))
            return value, np.concatenate([grad[:, :D].ravel(), grad[:, D]])

        def stop_on_original_gradient(intermediate_result: object) -> None:
            if last["met"]:
                raise StopIteration

        def finish(theta: np.ndarray, n_iter: int, converged: bool, message: str) -> LogisticFit:
            """The fit at theta; its data terms are kept when its last float64 evaluation was there
            (intercepts up to a common shift, which changes neither the loss nor the gradient)."""
            fit = self._result(theta, n_iter, converged, message)
            at = exact_at["theta"]
            centred = (lambda b: b - b.mean()) if K > 1 else (lambda b: b)
            if np.array_equal(at[:, :D], theta[:, :D]) and np.allclose(
                    centred(at[:, D]), centred(theta[:, D]), rtol=0, atol=1e-12 * (1 + np.abs(theta[:, D]).max())):
                self._kept[id(fit.coef)] = fit.coef, exact_at["data"]
            return fit

        tried = []
        for theta, data in starts:  # in float64: the start's value and gradient decide its choice and its stop
            if data is None:
                value, grad = original(theta, exact=True)
                tried.append((value, theta, grad, last["met"], curvature[-1], dict(memo), exact_at["data"]))
            else:  # a fit's own start: its data terms, kept from its last float64 evaluation, and this C's ridge
                W = theta[:, :D]
                value = data[0] + 0.5 * ridge * float(np.sum(W * W))
                grad = data[1] + ridge * np.hstack([W, np.zeros((K, 1))])
                tried.append((value, theta, grad, self._meets(grad, tol), data[2], {}, data))
        value, theta, grad, met, curv, chain, data = min(tried, key=lambda t: t[0])
        memo.update(chain)
        exact_at.update(theta=theta, data=data)
        del tried, chain  # the other starts' logits
        shift = float(theta[:, D].mean())
        at_start = value, grad
        last["met"] = met
        if met:
            return finish(theta, 0, True, "CONVERGENCE: the start meets tol")
        at_zero = 0.25 if K == 1 else (1 - 1 / K) / K  # the mean curvature at zero weights
        c = CURVATURE_SCALE * max(curv, MIN_CURVATURE * at_zero)
        options = {"maxls": 50, "gtol": 0.0, "ftol": 64 * np.finfo(float).eps}
        # the ridge dominates: L-BFGS as scikit-learn runs it, on the original variables
        if c * np.trace(self._gram[:D, :D]) < ridge:
            L = None
            first = np.concatenate([theta[:, :D].ravel(), theta[:, D]])
            phase["exact"] = True  # float64 products: a few iterations, and the intercepts' slack decides
        else:
            S = c * self._gram
            S[np.arange(D), np.arange(D)] += ridge
            L = cholesky(S, lower=True)
            first = (theta @ L).ravel()
        n_iter = 0
        while True:
            result = minimize(plain if L is None else whitened, first, jac=True, method="L-BFGS-B",
                              callback=stop_on_original_gradient,
                              options={**options, "maxiter": int(max_iter) - n_iter})
            n_iter += int(result.nit)
            if L is None:
                theta = np.hstack([result.x[:K * D].reshape(K, D), result.x[K * D:].reshape(K, 1)])
            else:
                theta = self._recentre(solve_triangular(L, result.x.reshape(K, D + 1).T, lower=True, trans="T").T,
                                       shift)
            if result.status == 99:  # the callback's StopIteration: the original gradient met tol
                return finish(theta, n_iter, True, "CONVERGENCE: max |gradient| <= tol")
            if phase["exact"] or n_iter >= max_iter:
                return finish(theta, n_iter, bool(result.status == 0), str(result.message))
            # float32 products stopped short of tol (a relative decrease below 64 eps or a line
            # search that failed): the fit goes on from there with float64 products, L-BFGS restarted
            phase["exact"] = True
            first = result.x
            at_start = original(theta)
            if last["met"]:
                return finish(theta, n_iter, True, "CONVERGENCE: max |gradient| <= tol")

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

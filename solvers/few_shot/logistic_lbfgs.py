"""L2-regularised multinomial logistic regression fitted by SciPy's L-BFGS-B, with scikit-learn's
objective and stopping rule.

Why not scikit-learn's ``LogisticRegression`` itself: solvers/ does not import scikit-learn (its
import alone takes about a second: bench/RESULTS.md), and scikit-learn fits float32 rows in
float32, where a tight tolerance cannot be met (line searches stall, or the decrease drowns in
rounding); the linear probe needs converged fits (its C search scores every visited C by one).
Here rows, products and sums are float64. (Float32 products for the early iterations, used
until issue 25, did not pay once every fit must reach the probe's tolerance: bench/RESULTS.md.)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class LogisticFit:
    """Weights ``coef`` (K, D) and ``intercept`` (K,) in float64, K = n_classes (1 for two
    classes: scikit-learn's binary model, the logit of class 1 against class 0)."""

    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int
    converged: bool
    message: str


def _objective(X: np.ndarray, y: np.ndarray, n_outputs: int,
               C: float) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """f(w) = mean cross-entropy + |W|^2 / (2 C n) and its gradient (scikit-learn's scaling of
    C * sum CE + |W|^2 / 2, so its ``tol`` means the same); w = [W.ravel(), b]. X is float64."""
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
            Z[rows, y] -= 1
        grad_W = (Z.T @ X) / n + ridge * W
        grad_b = Z.sum(axis=0) / n
        value = loss / n + 0.5 * ridge * float(np.dot(W.ravel(), W.ravel()))
        return value, np.concatenate([grad_W.ravel(), grad_b])

    return value_and_gradient


def fit_logistic(X: np.ndarray, y: np.ndarray, n_classes: int, C: float,
                 start: tuple[np.ndarray, np.ndarray] | None = None, tol: float = 1e-6,
                 max_iter: int = 1000) -> LogisticFit:
    """Fit C * sum_i CE(W x_i + b, y_i) + |W|^2 / 2 (b unpenalised) from ``start`` (zeros if None),
    in float64, stopping as scikit-learn's lbfgs solver does (max |gradient| <= tol, relative
    decrease below 64 eps, or ``max_iter`` iterations; line searches of at most 50 steps).

    ``y`` holds class indices 0 .. n_classes-1. ``converged`` is False when the fit ended for any
    other reason than a tolerance (``message`` says which).
    """
    from scipy.optimize import minimize

    X64 = np.ascontiguousarray(X, dtype=np.float64)
    n_outputs = 1 if n_classes == 2 else n_classes
    D = X64.shape[1]
    if start is None:
        w = np.zeros(n_outputs * (D + 1))
    else:
        w = np.concatenate([np.asarray(start[0], np.float64).ravel(), np.asarray(start[1], np.float64).ravel()])
    options = {"maxls": 50, "gtol": float(tol), "ftol": 64 * np.finfo(float).eps, "maxiter": int(max_iter)}
    result = minimize(_objective(X64, y, n_outputs, C), w, jac=True, method="L-BFGS-B", options=options)
    w = result.x
    W = w[:n_outputs * D].reshape(n_outputs, D).copy()
    return LogisticFit(W, w[n_outputs * D:].copy(), int(result.nit), bool(result.status == 0), str(result.message))

"""L2-regularised multinomial logistic regression fitted by SciPy's L-BFGS-B, with scikit-learn's
objective and stopping rule, and the choice of float32 products for the early iterations.

Why not scikit-learn's ``LogisticRegression`` itself: it fits float64 rows in float64 and float32
rows in float32 throughout, loss sums included. At the linear probe's sizes (ImageNet 16-shot:
16,000 x 1,024 rows, 1,000 classes) each evaluation is two n x D x C products, and float32
products are twice as fast, but a float32 objective cannot meet a tight tolerance (its line
searches stall, or its decrease drowns in rounding). Here the products can run in float32
while the loss and gradient are summed and handed to L-BFGS in float64; a float32 fit that stops
before its gradient meets the tolerance goes on in float64 from where it stopped.
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
    C * sum CE + |W|^2 / 2, so its ``tol`` means the same); w = [W.ravel(), b]. Products in X's
    dtype, sums in float64."""
    n, D = X.shape
    rows = np.arange(n)
    ridge = 1.0 / (C * n)
    binary = n_outputs == 1
    target = y.astype(X.dtype) if binary else np.empty(0, X.dtype)  # used by the binary branch only
    target64 = y.astype(np.float64) if binary else np.empty(0)

    def value_and_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
        W = w[:n_outputs * D].reshape(n_outputs, D)
        b = w[n_outputs * D:]
        Z = X @ W.T.astype(X.dtype)
        Z += b.astype(X.dtype)
        if binary:  # class 0's logit is fixed at 0: CE = log(1 + e^z) - t z
            z = Z[:, 0]
            loss = float(np.logaddexp(0, z).sum(dtype=np.float64) - np.dot(target64, z.astype(np.float64)))
            residual = np.reciprocal(1 + np.exp(-z))  # sigmoid(z) - t
            residual -= target
            Z = residual[:, None]
        else:
            picked = Z[rows, y].copy()
            top = Z.max(axis=1)
            Z -= top[:, None]
            np.exp(Z, out=Z)
            total = Z.sum(axis=1)
            loss = float(np.log(total).sum(dtype=np.float64) + top.sum(dtype=np.float64)
                         - picked.sum(dtype=np.float64))
            Z /= total[:, None]  # softmax - one-hot
            Z[rows, y] -= 1
        grad_W = (Z.T @ X).astype(np.float64) / n + ridge * W
        grad_b = Z.sum(axis=0, dtype=np.float64) / n
        value = loss / n + 0.5 * ridge * float(np.dot(W.ravel(), W.ravel()))
        return value, np.concatenate([grad_W.ravel(), grad_b])

    return value_and_gradient


def fit_logistic(X: np.ndarray, y: np.ndarray, n_classes: int, C: float,
                 start: tuple[np.ndarray, np.ndarray] | None = None, tol: float = 1e-6,
                 max_iter: int = 1000, float32_products: bool = False) -> LogisticFit:
    """Fit C * sum_i CE(W x_i + b, y_i) + |W|^2 / 2 (b unpenalised) from ``start`` (zeros if None),
    stopping as scikit-learn's lbfgs solver does (max |gradient| <= tol, relative decrease below
    64 eps, or ``max_iter`` iterations; line searches of at most 50 steps).

    ``y`` holds class indices 0 .. n_classes-1. With ``float32_products`` the products run in
    float32 until L-BFGS stops; unless it stopped on the gradient tolerance (or ``max_iter``),
    the fit goes on in float64 with the iterations left. ``converged`` is False when the fit
    ended for any other reason than a tolerance (``message`` says which).
    """
    from scipy.optimize import minimize

    X64 = np.ascontiguousarray(X, dtype=np.float64)
    n_outputs = 1 if n_classes == 2 else n_classes
    D = X64.shape[1]
    if start is None:
        w = np.zeros(n_outputs * (D + 1))
    else:
        w = np.concatenate([np.asarray(start[0], np.float64).ravel(), np.asarray(start[1], np.float64).ravel()])
    options = {"maxls": 50, "gtol": float(tol), "ftol": 64 * np.finfo(float).eps}
    n_iter = 0
    stages: list[np.ndarray] = [X64.astype(np.float32), X64] if float32_products else [X64]
    for rows in stages:
        result = minimize(_objective(rows, y, n_outputs, C), w, jac=True, method="L-BFGS-B",
                          options={**options, "maxiter": int(max_iter) - n_iter})
        w, n_iter = result.x, n_iter + int(result.nit)
        # float32 ends early on noise (a stalled line search, or a decrease below 64 float64
        # eps that float32 sums cannot show): unless its gradient met tol, float64 goes on
        if result.status == 1 or np.max(np.abs(result.jac), initial=0.0) <= tol:
            break
    W = w[:n_outputs * D].reshape(n_outputs, D).copy()
    return LogisticFit(W, w[n_outputs * D:].copy(), n_iter, bool(result.status == 0), str(result.message))

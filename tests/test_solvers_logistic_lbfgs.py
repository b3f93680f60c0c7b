"""fit_logistic against scikit-learn's LogisticRegression and an independent objective."""
import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression

from solvers.few_shot.logistic_lbfgs import fit_logistic


def problem(seed, n_classes, n=240, D=12):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, D))
    y = np.arange(n) % n_classes
    X = centres[y] + 1.5 * rng.standard_normal((n, D))
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


def objective(W, b, X, y, C):
    """C * sum CE + |W|^2 / 2, re-derived (multinomial, K = n_classes)."""
    Z = X @ W.T + b
    return C * np.sum(logsumexp(Z, axis=1) - Z[np.arange(y.size), y]) + 0.5 * np.sum(W ** 2)


@pytest.mark.parametrize("n_classes", [2, 5])
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_the_optimum_is_scikit_learns(n_classes, C):
    X, y = problem(n_classes, n_classes)
    fit = fit_logistic(X, y, n_classes, C, tol=1e-10, max_iter=10000)
    oracle = LogisticRegression(C=C, solver="newton-cg", tol=1e-12, max_iter=100000).fit(X, y)
    assert fit.converged and fit.coef.shape == oracle.coef_.shape == (1 if n_classes == 2 else n_classes, 12)
    scale = np.abs(oracle.coef_).max()
    np.testing.assert_allclose(fit.coef, oracle.coef_, atol=1e-5 * scale)
    np.testing.assert_allclose(fit.intercept, oracle.intercept_, atol=1e-5 * max(scale, 1))


def test_float32_rows_are_fitted_in_float64_to_a_tolerance_float32_cannot_meet():
    X, y = problem(3, 4)
    X = X.astype(np.float32).astype(np.float64)  # the rows as float32 holds them
    oracle = LogisticRegression(C=100.0, solver="newton-cg", tol=1e-14, max_iter=100000).fit(X, y)
    best = objective(oracle.coef_, oracle.intercept_, X, y, 100.0)
    fit = fit_logistic(X.astype(np.float32), y, 4, 100.0, tol=1e-9, max_iter=10000)
    assert fit.converged and abs(objective(fit.coef, fit.intercept, X, y, 100.0) - best) / best < 1e-10


def test_a_warm_start_reaches_the_same_optimum_in_fewer_iterations():
    X, y = problem(4, 5)
    near = fit_logistic(X, y, 5, 10.0, tol=1e-6)
    cold = fit_logistic(X, y, 5, 12.0, tol=1e-10, max_iter=10000)
    warm = fit_logistic(X, y, 5, 12.0, start=(near.coef, near.intercept), tol=1e-10, max_iter=10000)
    assert warm.n_iter < cold.n_iter
    np.testing.assert_allclose(warm.coef, cold.coef, atol=1e-5 * np.abs(cold.coef).max())


def test_max_iter_is_not_convergence():
    X, y = problem(5, 5)
    fit = fit_logistic(X, y, 5, 1e4, tol=1e-10, max_iter=3)
    assert not fit.converged and fit.n_iter == 3 and "ITERATIONS" in fit.message.upper()

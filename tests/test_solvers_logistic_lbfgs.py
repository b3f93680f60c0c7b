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


def clip_like(seed, n_classes, n=300, D=40):
    """Rows as CLIP-like features are: a large mean shared by all rows, anisotropic noise (a
    decaying spectrum over 40 directions), class offsets; L2-normalized."""
    rng = np.random.default_rng(seed)
    mean = 3.0 * rng.standard_normal(D)
    scales = np.geomspace(2.0, 0.02, D)
    centres = rng.standard_normal((n_classes, D)) * scales
    y = np.arange(n) % n_classes
    X = mean + centres[y] + rng.standard_normal((n, D)) * scales
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


@pytest.mark.parametrize("n_classes", [2, 6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_whitened_fit_reaches_scikit_learns_optimum_on_clip_like_rows(n_classes, dtype):
    """At C = 1e3 the data outweigh the ridge, so the fit runs in whitened variables; it stops on
    the original variables' gradient and reaches the optimum of an independent tight Newton-CG
    fit (coefficients to 1e-6 of their scale), from float32 and float64 rows."""
    X, y = clip_like(10 + n_classes, n_classes)
    X = X.astype(dtype)
    rows = X.astype(np.float64)
    oracle = LogisticRegression(C=1e3, solver="newton-cg", tol=1e-14, max_iter=100000).fit(rows, y)
    fit = fit_logistic(X, y, n_classes, 1e3, tol=1e-11, max_iter=100000)
    assert fit.converged and fit.coef.shape == oracle.coef_.shape
    scale = np.abs(oracle.coef_).max()
    np.testing.assert_allclose(fit.coef, oracle.coef_, atol=1e-6 * scale)
    np.testing.assert_allclose(fit.intercept, oracle.intercept_, atol=1e-6 * scale)
    def value(W, b):  # a binary model's single row w is the multinomial pair [0, w]
        return objective(np.vstack([np.zeros_like(W), W]), np.r_[0, b], rows, y, 1e3) if n_classes == 2 \
            else objective(W, b, rows, y, 1e3)

    best = value(oracle.coef_, oracle.intercept_)
    assert abs(value(fit.coef, fit.intercept) - best) / best < 1e-10


def mean_objective(X, y, n_classes, C):
    """scikit-learn's scaling, re-derived: f(w) = mean CE + |W|^2 / (2 C n) and its gradient, w =
    [W.ravel(), b] (multinomial, K = n_classes)."""
    n, D = X.shape
    onehot = np.eye(n_classes)[y]

    def value_and_gradient(w):
        W, b = w[:n_classes * D].reshape(n_classes, D), w[n_classes * D:]
        Z = X @ W.T + b
        lse = logsumexp(Z, axis=1)
        R = np.exp(Z - lse[:, None]) - onehot
        value = np.mean(lse - Z[np.arange(n), y]) + np.sum(W ** 2) / (2 * C * n)
        return value, np.concatenate([(R.T @ X / n + W / (C * n)).ravel(), R.sum(axis=0) / n])

    return value_and_gradient


def test_the_preconditioned_fit_takes_fewer_iterations_than_lbfgs_on_the_original_variables():
    """The same problem, the same tolerance: SciPy's L-BFGS-B on the original variables, without
    the preconditioner, needs several times the iterations on CLIP-like rows."""
    from scipy.optimize import minimize

    X, y = clip_like(3, 6)
    fit = fit_logistic(X, y, 6, 1e3, tol=1e-9, max_iter=100000)
    plain = minimize(mean_objective(X, y, 6, 1e3), np.zeros(6 * 41), jac=True, method="L-BFGS-B",
                     options={"maxls": 50, "gtol": 1e-9, "ftol": 64 * np.finfo(float).eps, "maxiter": 100000})
    assert fit.converged and plain.status == 0
    assert 3 * fit.n_iter < plain.nit


def test_a_list_of_starts_fits_from_the_lowest_objective_and_keeps_the_intercepts_mean():
    """Of several starts the one of lowest objective is used (a start at the optimum: the same
    fit as from that start alone); adding a constant to every intercept leaves the objective unchanged, and the fit
    keeps the start's intercept mean, as L-BFGS on the original variables does."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    X, y = clip_like(4, 5)
    problem = LogisticProblem(X, y, 5)
    best = problem.fit(50.0, tol=1e-10, max_iter=100000)
    again = problem.fit(50.0, [(np.zeros((5, 40)), np.zeros(5)), (best.coef, best.intercept)], tol=1e-10)
    from_best = problem.fit(50.0, (best.coef, best.intercept), tol=1e-10)
    assert again.n_iter == from_best.n_iter <= 2 < best.n_iter and np.array_equal(again.coef, from_best.coef)
    shifted = problem.fit(50.0, (np.zeros((5, 40)), np.full(5, 7.0)), tol=1e-10, max_iter=100000)
    assert shifted.intercept.mean() == pytest.approx(7.0, abs=1e-9)
    np.testing.assert_allclose(shifted.intercept - 7.0, best.intercept, atol=1e-6 * np.abs(best.coef).max())
    np.testing.assert_allclose(shifted.coef, best.coef, atol=1e-6 * np.abs(best.coef).max())


@pytest.mark.parametrize("n_classes", [2, 5])
def test_fewer_rows_than_dimensions_fit_in_the_rows_span_to_the_same_optimum(n_classes):
    """30 rows in 200 dimensions: the fit runs on the rows' 30-dimensional span, from a start with
    a component outside it (removed: the optimum has none), and reaches scikit-learn's optimum;
    its stop is the full 200-column gradient's, re-derived here."""
    rng = np.random.default_rng(20 + n_classes)
    y = np.arange(30) % n_classes
    X = rng.standard_normal((n_classes, 200))[y] + 2.0 * rng.standard_normal((30, 200))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    K = 1 if n_classes == 2 else n_classes
    start = (rng.standard_normal((K, 200)), np.zeros(K))
    fit = fit_logistic(X, y, n_classes, 30.0, start=start, tol=1e-10, max_iter=100000)
    oracle = LogisticRegression(C=30.0, solver="newton-cg", tol=1e-14, max_iter=100000).fit(X, y)
    scale = np.abs(oracle.coef_).max()
    np.testing.assert_allclose(fit.coef, oracle.coef_, atol=1e-6 * scale)
    np.testing.assert_allclose(fit.intercept, oracle.intercept_, atol=1e-6 * scale)
    # the coefficients lie in the rows' span: their part orthogonal to it is zero
    span = np.linalg.svd(X, full_matrices=False)[2]
    assert np.abs(fit.coef - fit.coef @ span.T @ span).max() < 1e-12 * scale
    rule = fit_logistic(X, y, n_classes, 30.0, start=start, tol=1e-8, max_iter=100000)
    assert rule.message.endswith("max |gradient| <= tol")  # stopped by the rule: the full gradient meets tol
    Z = X @ rule.coef.T + rule.intercept
    if K == 1:
        residual = 1 / (1 + np.exp(-Z)) - y[:, None]
    else:
        residual = np.exp(Z - logsumexp(Z, axis=1, keepdims=True)) - np.eye(K)[y]
    grad = residual.T @ X / 30 + rule.coef / (30.0 * 30)
    assert np.abs(grad).max() <= 1e-8 and np.abs(residual.sum(axis=0) / 30).max() <= 1e-8


def test_float32_products_reach_the_float64_optimum_and_stop_on_the_float64_gradient():
    """3,000 rows: the gradient's float32 rounding is far below tol = 1e-7, so the fit takes its
    products in float32 (the logits chained from float64 ones); it stops only where the float64
    gradient, re-derived here, meets tol, at the optimum of an independent Newton-CG fit."""
    from solvers.few_shot import logistic_lbfgs
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    X, y = clip_like(30, 6, n=3000)
    problem = LogisticProblem(X, y, 6)
    fit = problem.fit(300.0, tol=1e-7, max_iter=100000)
    assert problem._rows32 is not None and logistic_lbfgs.FLOAT32_MARGIN * problem._float32_error <= 1e-7
    assert fit.converged and fit.message.endswith("max |gradient| <= tol")
    Z = X @ fit.coef.T + fit.intercept
    residual = np.exp(Z - logsumexp(Z, axis=1, keepdims=True)) - np.eye(6)[y]
    grad = residual.T @ X / 3000 + fit.coef / (300.0 * 3000)
    assert np.abs(grad).max() <= 1e-7 and np.abs(residual.sum(axis=0) / 3000).max() <= 1e-7
    oracle = LogisticRegression(C=300.0, solver="newton-cg", tol=1e-12, max_iter=100000).fit(X, y)
    scale = np.abs(oracle.coef_).max()
    np.testing.assert_allclose(fit.coef, oracle.coef_, atol=1e-3 * scale)
    best = objective(oracle.coef_, oracle.intercept_, X, y, 300.0)
    assert abs(objective(fit.coef, fit.intercept, X, y, 300.0) - best) / best < 1e-8


@pytest.mark.parametrize("n_classes", [2, 5])
def test_a_line_search_step_from_chained_float32_logits_is_the_float64_one(n_classes):
    """A line search's trials take the logits Z + t dZ, dZ one float32 product of the direction:
    the step's change of the objective and the new point's value and gradient equal an independent
    float64 evaluation to a millionth of the change (a float32 product of the logits themselves
    would be off by ~1e-7 of the logits, far more); the step meets the strong Wolfe conditions."""
    from solvers.few_shot import logistic_lbfgs
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    X, y = clip_like(31, n_classes, n=2000)
    K = 1 if n_classes == 2 else n_classes
    C, n = 10.0, X.shape[0]
    rng = np.random.default_rng(0)
    theta = 30 * rng.standard_normal((K, 41))
    problem = LogisticProblem(X, y, n_classes)
    problem._rows32 = X.astype(np.float32)
    ridge = 1 / (C * n)
    start = problem._exact(theta, ridge)
    direction = -start.grad / np.abs(start.grad).max() * 1e-2
    change, new = problem._line_search(start, direction, ridge, True, newton=True)
    new.grad = problem._gradient(new.theta, new.P, ridge, True)

    def independent(th):  # the binary model's single row w is the multinomial pair [0, w]
        W, b = th[:, :-1], th[:, -1]
        full = (np.vstack([np.zeros_like(W), W]), np.r_[0, b]) if K == 1 else (W, b)
        value, grad = mean_objective(X, y, max(K, 2), C)(np.concatenate([full[0].ravel(), full[1]]))
        grad = np.hstack([grad[:full[0].size].reshape(full[0].shape), grad[full[0].size:, None]])
        return value, grad[1:] if K == 1 else grad

    before, _ = independent(theta)
    after, grad = independent(new.theta)
    assert change < 0 and abs(change - (after - before)) <= 1e-6 * abs(after - before)
    assert abs(new.value - after) <= 1e-6 * abs(after - before)
    np.testing.assert_allclose(new.grad, grad, rtol=0, atol=1e-6 * np.abs(grad).max())
    slope0 = float(np.vdot(start.grad, direction))
    t = float(np.vdot(new.theta - theta, direction) / np.vdot(direction, direction))
    assert change <= logistic_lbfgs.ARMIJO * t * slope0
    assert abs(float(np.vdot(grad, direction))) <= logistic_lbfgs.WOLFE * abs(slope0)


@pytest.mark.parametrize("scale", [1e4, 1e6])
def test_a_line_search_along_a_direction_far_too_long_brackets_the_step(scale, monkeypatch):
    """From zero weights along the gradient scaled 1e4 or 1e6 times past the line's minimum, phi'
    is nearly constant and then jumps (the softmax saturates): secant steps alone creep from the
    start by a thousandth of the bracket and exhaust the 50 trials; halving the bracket when one
    end moves twice in a row finds a step meeting the strong Wolfe conditions in a few trials."""
    from solvers.few_shot import logistic_lbfgs
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    X, y = clip_like(5, 4, n=400)
    problem = LogisticProblem(X, y, 4)
    ridge = 1 / (1e4 * 400)
    start = problem._exact(np.zeros((4, 41)), ridge)
    direction = -start.grad / np.abs(start.grad).max() * scale
    trials = []
    trial = problem._trial
    monkeypatch.setattr(problem, "_trial", lambda *args: trials.append(1) or trial(*args))
    change, new = problem._line_search(start, direction, ridge, False, newton=False)
    assert len(trials) <= 15 and change < 0
    value, grad = mean_objective(X, y, 4, 1e4)(np.concatenate([new.theta[:, :-1].ravel(), new.theta[:, -1]]))
    slope0 = float(np.vdot(start.grad, direction))
    flat = np.concatenate([direction[:, :-1].ravel(), direction[:, -1]])
    assert abs(float(np.vdot(grad, flat))) <= logistic_lbfgs.WOLFE * abs(slope0)
    assert value - start.value == pytest.approx(change, rel=1e-9)


def test_the_two_loop_direction_is_the_explicit_bfgs_inverse_hessian_times_the_gradient():
    """L-BFGS's two-loop recursion against the matrices it stands for: H_0 = gamma kron(I_K, S^-1)
    (the preconditioner on each row of Theta), then H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T
    for each pair, oldest first; the direction is -H g (flattened row by row)."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    rng = np.random.default_rng(3)
    K, D1 = 3, 5
    A = rng.standard_normal((D1, D1))
    inverse = np.linalg.inv(A @ A.T + D1 * np.eye(D1))
    pairs = []
    for _ in range(4):
        s = rng.standard_normal((K, D1))
        y = s + 0.3 * rng.standard_normal((K, D1))  # positive curvature s.y > 0
        pairs.append((s, y, 1.0 / float(np.vdot(s, y))))
    grad, gamma = rng.standard_normal((K, D1)), 0.7
    H = gamma * np.kron(np.eye(K), inverse)
    for s, y, rho in pairs:
        s, y = s.ravel(), y.ravel()
        left = np.eye(K * D1) - rho * np.outer(s, y)
        H = left @ H @ left.T + rho * np.outer(s, s)
    direction = LogisticProblem._direction(grad, pairs, inverse, gamma)
    np.testing.assert_allclose(direction.ravel(), -H @ grad.ravel(), rtol=1e-12, atol=1e-12)
    # without pairs: the preconditioned gradient, unscaled (the line search's Newton step sets the length)
    np.testing.assert_allclose(LogisticProblem._direction(grad, [], inverse, gamma), -grad @ inverse, rtol=1e-12)


def test_a_direction_that_does_not_descend_is_refused():
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    X, y = clip_like(6, 4, n=200)
    problem = LogisticProblem(X, y, 4)
    start = problem._exact(0.1 * np.random.default_rng(0).standard_normal((4, 41)), 1e-3)
    assert problem._line_search(start, start.grad, 1e-3, False, newton=True) is None  # uphill
    assert problem._line_search(start, np.zeros_like(start.grad), 1e-3, False, newton=True) is None  # flat
    assert problem._line_search(start, -start.grad, 1e-3, False, newton=True) is not None


def fail_line_searches(monkeypatch, problem, fails):
    """Make the problem's line searches numbered in ``fails`` (from 0) find no step; record each
    call's (float32, had pairs: newton False) and whether it found a step."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    calls = []

    def line_search(point, direction, ridge, float32, newton, exp32=False):
        found = None if len(calls) in fails else LogisticProblem._line_search(
            problem, point, direction, ridge, float32, newton, exp32)
        calls.append((float32, newton, found is not None))
        return found

    monkeypatch.setattr(problem, "_line_search", line_search)
    return calls


def test_a_failed_lbfgs_step_retries_along_the_preconditioned_gradient(monkeypatch):
    """When the L-BFGS direction finds no step, the pairs are dropped and the same point is searched
    along the preconditioned gradient (a Newton first trial); the fit reaches the same optimum, and
    n_iter counts the steps taken."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    X, y = clip_like(7, 5)
    reference = LogisticProblem(X, y, 5).fit(1e3, tol=1e-9, max_iter=100000)
    problem = LogisticProblem(X, y, 5)
    calls = fail_line_searches(monkeypatch, problem, {3})
    fit = problem.fit(1e3, tol=1e-9, max_iter=100000)
    assert calls[3] == (False, False, False) and calls[4][1] is True and calls[4][2]  # the retry: no pairs
    assert fit.converged and fit.n_iter == sum(found for _, _, found in calls)
    scale = np.abs(reference.coef).max()
    np.testing.assert_allclose(fit.coef, reference.coef, atol=1e-5 * scale)


def test_a_float32_fit_whose_line_search_stalls_goes_on_in_float64(monkeypatch):
    """Float32 products (3,000 rows, tol 1e-7): a line search that finds no step, even without
    pairs, sends the fit on from float64 logits with float64 products; it still stops where the
    float64 gradient, re-derived here, meets tol."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    X, y = clip_like(30, 6, n=3000)
    problem = LogisticProblem(X, y, 6)
    calls = fail_line_searches(monkeypatch, problem, {2, 3})
    fit = problem.fit(300.0, tol=1e-7, max_iter=100000)
    assert [c[0] for c in calls[:4]] == [True] * 4 and not any(c[0] for c in calls[4:])
    assert fit.converged and fit.n_iter == sum(found for _, _, found in calls)
    Z = X @ fit.coef.T + fit.intercept
    residual = np.exp(Z - logsumexp(Z, axis=1, keepdims=True)) - np.eye(6)[y]
    assert np.abs(residual.T @ X / 3000 + fit.coef / (300.0 * 3000)).max() <= 1e-7


def test_a_fit_whose_line_searches_all_fail_ends_unconverged(monkeypatch):
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    X, y = clip_like(8, 4)
    problem = LogisticProblem(X, y, 4)
    fail_line_searches(monkeypatch, problem, set(range(100)))
    fit = problem.fit(1e3, tol=1e-9)
    assert not fit.converged and fit.n_iter == 0 and fit.message.startswith("ABNORMAL")
    np.testing.assert_array_equal(fit.coef, np.zeros((4, 40)))


@pytest.mark.parametrize("n_classes", [2, 5])
def test_the_first_trials_newton_curvature_is_the_lines_second_derivative(n_classes):
    """phi''(0) from the probabilities and dZ against a central difference of the slope phi'(t),
    the slope re-derived from the objective's gradient at theta +- h d."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    X, y = clip_like(9, n_classes, n=300)
    K = 1 if n_classes == 2 else n_classes
    rng = np.random.default_rng(1)
    problem = LogisticProblem(X, y, n_classes)
    theta, direction, ridge = rng.standard_normal((K, 41)), rng.standard_normal((K, 41)), 0.01
    point = problem._exact(theta, ridge)
    dZ = problem._logits(direction, False)
    curvature = problem._line_curvature(point.P, dZ, ridge * float(np.vdot(direction[:, :-1], direction[:, :-1])))
    h = 1e-5
    slopes = [float(np.vdot(problem._exact(theta + sign * h * direction, ridge).grad, direction)) for sign in (1, -1)]
    assert curvature == pytest.approx((slopes[0] - slopes[1]) / (2 * h), rel=1e-6)
    assert curvature > ridge * float(np.vdot(direction[:, :-1], direction[:, :-1]))


def test_the_relative_decrease_rule_stops_a_fit_short_of_a_tolerance_it_cannot_resolve():
    """scikit-learn's second stop: tol = 1e-11 on 300 rows is below what the objective's decreases
    resolve (64 eps relative), so the fit ends by that rule, converged as scikit-learn counts it, at
    the optimum of an independent Newton-CG fit to 1e-10 of the objective; its data terms are kept
    (a fit started there at the same C ends at once)."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    X, y = clip_like(12, 2)
    problem = LogisticProblem(X, y, 2)
    fit = problem.fit(1e3, tol=1e-11, max_iter=100000)
    assert fit.converged and fit.message == "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH"
    oracle = LogisticRegression(C=1e3, solver="newton-cg", tol=1e-14, max_iter=100000).fit(X, y)
    full = lambda W, b: objective(np.vstack([np.zeros_like(W), W]), np.r_[0, b], X, y, 1e3)  # noqa: E731
    best = full(oracle.coef_, oracle.intercept_)
    assert abs(full(fit.coef, fit.intercept) - best) / best < 1e-10
    again = problem.fit(1e3, (fit.coef, fit.intercept), tol=1e-9)
    assert again.n_iter == 0 and again.message == "CONVERGENCE: the start meets tol"


def predicted(fit, X_val):
    """A fit's predicted classes of the rows X_val (the binary model: the sign of its one logit)."""
    Z = X_val @ fit.coef.T + fit.intercept
    return Z[:, 0] > 0 if Z.shape[1] == 1 else Z.argmax(axis=1)


def spy_unwhitened(monkeypatch):
    """Record, for each L-BFGS run the problem starts, whether it runs on the original variables
    (no preconditioner: the ridge dominates)."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    unwhitened, iterate = [], LogisticProblem._iterate
    monkeypatch.setattr(LogisticProblem, "_iterate", lambda self, point, ridge, inverse, *rest:
                        unwhitened.append(inverse is None) or iterate(self, point, ridge, inverse, *rest))
    return unwhitened


@pytest.mark.parametrize("gradient_gate", [True, False])
@pytest.mark.parametrize(("C", "ridge_dominated"), [(1e3, False), (1e-2, True)])
def test_a_settled_fit_stops_at_the_first_iterate_whose_predictions_held_and_gradient_is_small(
        C, ridge_dominated, gradient_gate, monkeypatch):
    """The settle rule re-derived on every iterate (a fit cut by max_iter = m ends at iterate m of
    the same path): the settled fit ends at the first m whose validation predictions equal those
    of iterates m-1, m-2, m-3 and whose max |gradient| (the mean objective's, re-derived in
    float64) is at most Settle's gradient_gate (SETTLE_TOL) x tol (also with that gate lifted);
    it predicts the validation rows as the fit converged to tol does, in fewer iterations. Whitened (C = 1e3) and
    ridge-dominated (C = 1e-2, then on the original variables) fits alike."""
    from solvers.few_shot.logistic_lbfgs import SETTLE_PATIENCE, SETTLE_TOL, LogisticProblem, Settle

    gate = SETTLE_TOL if gradient_gate else 1e12  # 1e12: the predictions' rule alone
    limit = gate * 1e-10

    X, y = clip_like(21, 6, n=600)
    X, y, X_val = X[:300], y[:300], X[300:]
    tol = 1e-10
    problem = LogisticProblem(X, y, 6)
    unwhitened = spy_unwhitened(monkeypatch)
    settle = Settle(X_val, gradient_gate=gate)
    settled = problem.fit(C, tol=tol, max_iter=10000, settle=settle)
    assert unwhitened == [ridge_dominated]  # where the ridge dominates: L-BFGS on the original variables
    exact = LogisticProblem(X, y, 6).fit(C, tol=tol, max_iter=10000)
    assert settled.settled and not settled.converged and settled.message.startswith("SETTLED")
    assert exact.converged and settled.n_iter < exact.n_iter
    np.testing.assert_array_equal(predicted(settled, X_val), predicted(exact, X_val))
    gradient = mean_objective(X, y, 6, C)
    predictions, small = [], []
    for m in range(settled.n_iter + 1):
        cut = settled if m == settled.n_iter else problem.fit(C, tol=tol, max_iter=m, settle=settle)
        assert cut.n_iter == m and cut.settled == (m == settled.n_iter)
        predictions.append(predicted(cut, X_val))
        small.append(np.abs(gradient(np.concatenate([cut.coef.ravel(), cut.intercept]))[1]).max() <= limit)

    def held(m):
        return m >= SETTLE_PATIENCE and all(np.array_equal(predictions[m], predictions[m - k])
                                            for k in range(1, SETTLE_PATIENCE + 1))

    assert held(settled.n_iter) and small[settled.n_iter]
    assert not any(held(m) and small[m] for m in range(1, settled.n_iter))


@pytest.mark.parametrize(("n_classes", "n"), [(2, 300), (6, 30)])
def test_a_settled_binary_or_span_fit_predicts_the_validation_rows_as_the_converged_fit(n_classes, n):
    """The binary model (one logit: the prediction is its sign) and a fit in the rows' span (30 rows
    < 40 dimensions: the validation rows are watched in the span's columns) settle before tol,
    predicting every validation row as the fit converged to tol does."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem, Settle

    X, y = clip_like(31, n_classes, n=n + 300)
    X, y, X_val = X[:n], y[:n], X[n:]
    settled = LogisticProblem(X, y, n_classes).fit(1e3, tol=1e-10, max_iter=10000, settle=Settle(X_val))
    exact = LogisticProblem(X, y, n_classes).fit(1e3, tol=1e-10, max_iter=10000)
    assert settled.settled and exact.converged and settled.n_iter < exact.n_iter

    np.testing.assert_array_equal(predicted(settled, X_val), predicted(exact, X_val))
    assert len(np.unique(predicted(exact, X_val))) == n_classes  # every class predicted somewhere


@pytest.mark.parametrize("patience", [1, 3])
def test_the_watch_settles_exactly_where_the_rule_says(patience):
    """The settle rule on crafted iterates (one watched row; an iterate's intercepts pick its
    predicted class), re-derived call by call over random sequences of predictions and gradient
    gates: iterate t settles iff its gradient is small, t >= patience, and iterates t - 1 ..
    t - patience predict as it does."""
    from solvers.few_shot.logistic_lbfgs import _Watch

    rng = np.random.default_rng(patience)
    for _ in range(50):
        classes = rng.integers(0, 2, 40) if rng.random() < 0.5 else np.repeat(rng.integers(0, 3, 8), 5)
        small = rng.random(40) < 0.7
        watch = _Watch(np.ones((1, 1), np.float32), patience, gate=1.0)
        for t, (c, gate) in enumerate(zip(classes, small)):
            theta = np.zeros((3, 2))
            theta[c, 1] = 1.0  # logits = the intercepts: class c predicted
            expected = bool(gate) and t >= patience and all(classes[t - k] == c for k in range(1, patience + 1))
            assert watch.settled(theta, bool(gate)) == expected, (t, classes[:t + 1], small[:t + 1])


def spy_softmax(monkeypatch):
    """Record, for each softmax the problem takes, whether its exponentials were float32 ones."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem

    calls, softmax = [], LogisticProblem._softmax
    monkeypatch.setattr(LogisticProblem, "_softmax", staticmethod(
        lambda Z, out, scratch32=None: calls.append(scratch32 is not None) or softmax(Z, out, scratch32)))
    return calls


@pytest.mark.parametrize(("tol", "float32_exponentials"), [(1e-8, True), (1e-10, False)])
def test_a_settled_fit_takes_float32_exponentials_only_where_their_error_is_below_its_gate(
        tol, float32_exponentials, monkeypatch):
    """The rule re-derived: float32 exponentials where FLOAT32_MARGIN x eps32 x the largest column
    mean of |x| is at most SETTLE_TOL x tol. With them the softmax is float32's to 1e-7 and the
    settled fit still predicts every validation row as the converged fit, with its float64
    gradient within the gate (plus the float32 error the margin allows)."""
    from solvers.few_shot.logistic_lbfgs import FLOAT32_MARGIN, SETTLE_TOL, LogisticProblem, Settle

    X, y = clip_like(21, 6, n=600)
    X, y, X_val = X[:300], y[:300], X[300:]
    bound = FLOAT32_MARGIN * float(np.finfo(np.float32).eps) * np.abs(X).mean(axis=0).max()
    assert (bound <= SETTLE_TOL * tol) == float32_exponentials
    Z = X_val @ np.random.default_rng(0).standard_normal((40, 6)) * 5
    P64, P32 = np.empty_like(Z), np.empty_like(Z)
    lse64 = LogisticProblem._softmax(Z, P64)
    lse32 = LogisticProblem._softmax(Z, P32, np.empty(Z.shape, np.float32))
    assert np.abs(P32 - P64).max() <= 2e-7 * P64.max() and np.abs(lse32 - lse64).max() <= 2e-7
    assert not np.array_equal(P32, P64)

    calls = spy_softmax(monkeypatch)
    settled = LogisticProblem(X, y, 6).fit(1e3, tol=tol, max_iter=10000, settle=Settle(X_val))
    assert settled.settled and any(calls) == float32_exponentials
    exact = LogisticProblem(X, y, 6).fit(1e3, tol=1e-10, max_iter=10000)
    np.testing.assert_array_equal(predicted(settled, X_val), predicted(exact, X_val))
    gradient = mean_objective(X, y, 6, 1e3)(np.concatenate([settled.coef.ravel(), settled.intercept]))[1]
    assert np.abs(gradient).max() <= 1.25 * SETTLE_TOL * tol


def test_a_settled_fit_whose_float32_line_search_fails_goes_on_with_float64_exponentials(monkeypatch):
    """A line search with float32 exponentials that finds no step (their rounding can hide the
    last decreases) is not the end: the fit goes on with float64 ones and settles as the rule says."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem, Settle

    X, y = clip_like(21, 6, n=600)
    X, y, X_val = X[:300], y[:300], X[300:]
    problem = LogisticProblem(X, y, 6)
    calls, line_search = [], LogisticProblem._line_search

    def failing_once(point, direction, ridge, float32, newton, exp32=False):
        calls.append(exp32)
        if len(calls) in (3, 4):  # the third line search and its retry without pairs
            return None
        return line_search(problem, point, direction, ridge, float32, newton, exp32)

    monkeypatch.setattr(problem, "_line_search", failing_once)
    settled = problem.fit(1e3, tol=1e-8, max_iter=10000, settle=Settle(X_val))
    assert calls[:4] == [True] * 4 and len(calls) > 5 and not any(calls[4:])
    assert settled.settled and settled.message.startswith("SETTLED: the predictions")
    exact = LogisticProblem(X, y, 6).fit(1e3, tol=1e-10, max_iter=10000)
    np.testing.assert_array_equal(predicted(settled, X_val), predicted(exact, X_val))


def test_a_settled_fit_whose_float32_gradient_meets_tol_stops_without_float64_products(monkeypatch):
    """A settled fit (a score) whose gradient from float32 products meets tol stops there: no
    float64 product confirms it, its float64 gradient is within tol (plus the float32 error the
    margin allows), and it is the first iterate that meets tol. Started from a copy of it, it stops
    at once; started from the fit converged to tol in float64 (kept), it converges as before. A
    later settled fit starts from a settled fit's kept value and gradient, a fit to tol does not."""
    from solvers.few_shot.logistic_lbfgs import SETTLED_AT_TOL, LogisticProblem, Settle

    X, y = clip_like(21, 6, n=600)
    X, y, X_val = X[:300], y[:300], X[300:]
    problem, C, tol = LogisticProblem(X, y, 6), 1e-2, 1e-6
    products, logits = [], LogisticProblem._logits
    monkeypatch.setattr(LogisticProblem, "_logits",
                        lambda self, theta, float32: products.append(float32) or logits(self, theta, float32))
    settled = problem.fit(C, tol=tol, max_iter=10000, settle=Settle(X_val))
    assert settled.message == SETTLED_AT_TOL and settled.settled and not settled.converged
    assert products and all(products)  # float32 products only
    gradient = mean_objective(X, y, 6, C)
    assert np.abs(gradient(np.concatenate([settled.coef.ravel(), settled.intercept]))[1]).max() <= 1.25 * tol
    before = problem.fit(C, tol=tol, max_iter=settled.n_iter - 1, settle=Settle(X_val))
    assert before.n_iter == settled.n_iter - 1 and not before.settled
    assert np.abs(gradient(np.concatenate([before.coef.ravel(), before.intercept]))[1]).max() > tol

    copy = problem.fit(C, (settled.coef.copy(), settled.intercept.copy()), tol=tol, settle=Settle(X_val))
    assert copy.n_iter == 0 and copy.message == SETTLED_AT_TOL
    exact = problem.fit(C, tol=1e-9, max_iter=10000)
    again = problem.fit(C, (exact.coef, exact.intercept), tol=1e-9, settle=Settle(X_val))
    assert again.n_iter == 0 and again.converged and again.message == "CONVERGENCE: the start meets tol"

    from_data, kept = [], LogisticProblem._from_data
    monkeypatch.setattr(LogisticProblem, "_from_data", staticmethod(
        lambda theta, data, ridge: from_data.append(True) or kept(theta, data, ridge)))
    problem.fit(10 * C, (settled.coef, settled.intercept), tol=1e-9, max_iter=10000)
    assert from_data == []  # a fit to tol evaluates a settled fit's start afresh
    problem.fit(10 * C, (settled.coef, settled.intercept), tol=tol, max_iter=10000, settle=Settle(X_val))
    assert from_data == [True]


def test_a_ridge_dominated_settled_fit_takes_float64_exponentials(monkeypatch):
    """Where the ridge dominates (small C) a settled fit's decreases are tiny and float32
    exponentials would make its line searches fail: only its start's softmax is float32 (taken
    before the ridge's dominance is known), then redone, and every trial's is float64."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem, Settle

    X, y = clip_like(21, 6, n=600)
    X, y, X_val = X[:300], y[:300], X[300:]
    unwhitened = spy_unwhitened(monkeypatch)
    calls = spy_softmax(monkeypatch)
    settled = LogisticProblem(X, y, 6).fit(1e-2, tol=1e-8, max_iter=10000, settle=Settle(X_val))
    assert unwhitened == [True] and settled.settled and settled.n_iter >= 1
    assert calls[0] and len(calls) > 2 and not any(calls[1:])
    exact = LogisticProblem(X, y, 6).fit(1e-2, tol=1e-10, max_iter=10000)
    np.testing.assert_array_equal(predicted(settled, X_val), predicted(exact, X_val))


def test_fits_on_one_problem_share_its_buffers_and_fit_as_fresh_problems(monkeypatch):
    """(n, K) arrays come from fresh pages, whose first writes cost page faults: the fits
    of one problem hand their buffers on, so after the first fit none allocates one, no buffer is
    spare twice, and each fit's weights are bit for bit those of the same fit on a fresh problem
    (settled fits with float32 products, a fit to tol, the ridge-dominated SciPy path)."""
    from solvers.few_shot.logistic_lbfgs import LogisticProblem, Settle

    X, y = clip_like(41, 5, n=3000)
    X, y, X_val = X[:2500], y[:2500], X[2500:]
    fresh_pages = []
    buffer = LogisticProblem._buffer
    monkeypatch.setattr(LogisticProblem, "_buffer",
                        lambda self: fresh_pages.append(not self._spare) or buffer(self))
    shared = LogisticProblem(X, y, 5)
    runs = [(1e2, Settle(X_val)), (1e3, Settle(X_val)), (1e3, None), (1e-4, None), (10.0, Settle(X_val))]
    start = None
    for i, (C, settle) in enumerate(runs):
        before = len(fresh_pages)
        fit = shared.fit(C, start, tol=1e-8, max_iter=10000, settle=settle)
        if i:
            assert not any(fresh_pages[before:])
        assert len({id(spare) for spare in shared._spare}) == len(shared._spare)
        alone = LogisticProblem(X, y, 5).fit(C, start, tol=1e-8, max_iter=10000, settle=settle)
        np.testing.assert_array_equal(fit.coef, alone.coef)
        np.testing.assert_array_equal(fit.intercept, alone.intercept)
        assert fit.n_iter == alone.n_iter > 0
        start = fit.coef.copy(), fit.intercept.copy()  # a copy: not the kept fit's data terms
    assert any(fresh_pages)

"""LinearProbe against scikit-learn's LogisticRegression at the same C."""
import numpy as np
from sklearn.linear_model import LogisticRegression

from solvers.linear_probe import LinearProbe


def unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def problem(seed=0, C=4, D=10, n=80):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((C, D))
    y = np.arange(n) % C
    return centres[y] + rng.standard_normal((n, D)), y, centres


def reference(X, y, C):
    lr = LogisticRegression(C=C, solver="lbfgs", tol=1e-10, max_iter=10000).fit(unit(X), y)
    return lr.coef_, lr.intercept_


def test_coefficients_match_sklearn_at_fixed_C():
    X, y, _ = problem()
    model = LinearProbe(C=3.0, tol=1e-10, max_iter=10000).fit(X, y)
    coef, intercept = reference(X, y, 3.0)
    np.testing.assert_allclose(model.coef_, coef, atol=1e-4)
    np.testing.assert_allclose(model.intercept_, intercept, atol=1e-4)
    np.testing.assert_allclose(model.decision_function(X), unit(X) @ coef.T + intercept, atol=1e-4)


def test_text_initialisation_reaches_the_same_optimum():
    X, y, centres = problem(seed=1)
    model = LinearProbe(C=0.7, init="text", text_weights=centres, tol=1e-10, max_iter=10000).fit(X, y)
    coef, intercept = reference(X, y, 0.7)
    np.testing.assert_allclose(model.coef_, coef, atol=1e-4)
    np.testing.assert_allclose(model.intercept_, intercept, atol=1e-4)


def test_binary_problem_gives_two_logit_columns_with_sklearn_margin():
    X, y, _ = problem(seed=2, C=2)
    model = LinearProbe(C=1.0, tol=1e-10, max_iter=10000).fit(X, y)
    lr = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(unit(X), y)
    logits = model.decision_function(X)
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], lr.decision_function(unit(X)), atol=1e-4)


def test_C_search_picks_a_grid_value_with_best_validation_accuracy():
    X, y, centres = problem(seed=3)
    rng = np.random.default_rng(4)
    y_val = np.arange(60) % 4
    X_val = centres[y_val] + rng.standard_normal((60, 10))
    model = LinearProbe(max_iter=200).fit(X, y, X_val, y_val)
    assert max(model.val_scores_.values()) == model.val_scores_[repr(model.C_)]
    best_fit = LogisticRegression(C=model.C_, max_iter=10000, tol=1e-10).fit(unit(X), y)
    assert np.mean(best_fit.predict(unit(X_val)) == y_val) == model.val_scores_[repr(model.C_)]
    assert LinearProbe().fit(X, y).C_ == 1.0

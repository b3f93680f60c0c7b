"""LinearProbe against scikit-learn's LogisticRegression at the same C."""
import numpy as np
import pytest
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
    logits = model.class_logits(X)
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], lr.decision_function(unit(X)), atol=1e-4)
    # scikit-learn's binary decision function is that margin, one value per row
    np.testing.assert_allclose(model.decision_function(X), lr.decision_function(unit(X)), atol=1e-4)


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


def few_shot_problem(seed=3, n_classes=10, D=64, shots=2):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, D))
    y = np.repeat(np.arange(n_classes), shots)
    X = centres[y] + 1.5 * rng.standard_normal((y.size, D))
    y_val = np.arange(100) % n_classes
    X_val = centres[y_val] + 1.5 * rng.standard_normal((100, D))
    return X, y, X_val, y_val


def test_the_chosen_C_is_fitted_to_convergence():
    """At 2 shots the search ends at a large C where warm-started L-BFGS stopped 8% above the
    optimum; the model must reach the objective of an independent tight Newton-CG fit."""
    from scipy.special import logsumexp

    def logistic_objective(W, b, X, y, C):  # scikit-learn's: C * sum of cross-entropies + |W|^2 / 2
        Z = X @ W.T + b
        return C * np.sum(logsumexp(Z, axis=1) - Z[np.arange(y.size), y]) + 0.5 * np.sum(W ** 2)

    X, y, X_val, y_val = few_shot_problem()
    model = LinearProbe().fit(X, y, X_val, y_val)
    assert model.C_ > 1e4
    oracle = LogisticRegression(C=model.C_, solver="newton-cg", tol=1e-12, max_iter=100000).fit(unit(X), y)
    ours = logistic_objective(model.coef_, model.intercept_, unit(X), y, model.C_)
    best = logistic_objective(oracle.coef_, oracle.intercept_, unit(X), y, model.C_)
    assert abs(ours - best) / best < 1e-6


def test_search_has_eight_values_per_decade_around_the_best_coarse_C():
    X, y, X_val, y_val = few_shot_problem(seed=1)
    model = LinearProbe().fit(X, y, X_val, y_val)
    tried = np.array(sorted(float(c) for c in model.val_scores_))
    coarse = [10.0 ** e for e in range(-6, 7)]
    fine = tried[~np.isin(tried, coarse)]
    centre = 10.0 ** np.round(np.log10(fine).mean())  # the best coarse C, in the middle
    assert fine.size == 14 and centre in coarse
    np.testing.assert_allclose(np.diff(np.log10(np.sort(np.r_[fine, centre]))), 1 / 8, rtol=1e-9)


def test_refit_on_val_fits_train_and_validation_rows_at_the_same_per_row_regularisation():
    X, y, X_val, y_val = few_shot_problem(seed=2)
    searched = LinearProbe().fit(X, y, X_val, y_val)
    model = LinearProbe(refit_on_val=True).fit(X, y, X_val, y_val)
    n_train, n_all = y.size, y.size + y_val.size
    assert model.C_ == pytest.approx(searched.C_ * n_train / n_all)
    oracle = LogisticRegression(C=model.C_, tol=1e-12, max_iter=100000, solver="newton-cg").fit(
        unit(np.r_[X, X_val]), np.r_[y, y_val])
    np.testing.assert_allclose(model.decision_function(X_val), oracle.decision_function(unit(X_val)), atol=2e-3)
    with pytest.raises(ValueError, match="refit_on_val=True needs a validation split"):
        LinearProbe(refit_on_val=True).fit(X, y)


def test_non_convergence_and_a_C_on_the_grid_edge_warn():
    from solvers.fit_warnings import SolverWarning

    X, y, X_val, y_val = few_shot_problem(seed=4)
    with pytest.warns(SolverWarning, match="did not converge at C = 1000"):
        model = LinearProbe(C=1000.0, final_max_iter=3).fit(X, y)
    assert "did not converge" in model.fit_warnings_[0]
    # validation rows that are all the same point: every C has the same accuracy, and the most
    # uniform prediction (the smallest C) has the lowest NLL: the search ends on its lower edge
    X_same = np.repeat(X_val[:1], 30, axis=0)
    with pytest.warns(SolverWarning, match="C = .* is the lower edge"):
        edge = LinearProbe().fit(X, y, X_same, np.arange(30) % 10)
    assert edge.C_ == min(float(c) for c in edge.val_scores_)

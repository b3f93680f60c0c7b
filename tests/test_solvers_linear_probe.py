"""LinearProbe against scikit-learn's LogisticRegression at the same C."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from solvers.few_shot.linear_probe import LinearProbe


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


def logistic_objective(W, b, X, y, C):  # scikit-learn's: C * sum of cross-entropies + |W|^2 / 2
    from scipy.special import logsumexp

    Z = X @ W.T + b
    return C * np.sum(logsumexp(Z, axis=1) - Z[np.arange(y.size), y]) + 0.5 * np.sum(W ** 2)


def test_the_chosen_C_is_fitted_to_convergence():
    """At 2 shots the search ends at a large C (562), where L-BFGS needs many iterations; the model
    must reach the objective of an independent tight Newton-CG fit, and fits cut short by
    max_iter must say so."""
    X, y, X_val, y_val = few_shot_problem(seed=11)
    model = LinearProbe().fit(X, y, X_val, y_val)
    assert model.C_ > 100 and not any("did not converge" in w for w in model.fit_warnings_)
    oracle = LogisticRegression(C=model.C_, solver="newton-cg", tol=1e-12, max_iter=100000).fit(unit(X), y)
    ours = logistic_objective(model.coef_, model.intercept_, unit(X), y, model.C_)
    best = logistic_objective(oracle.coef_, oracle.intercept_, unit(X), y, model.C_)
    assert abs(ours - best) / best < 1e-6
    cut = LinearProbe(max_iter=5).fit(X, y, X_val, y_val)
    stopped = next(w for w in cut.fit_warnings_ if "search fits did not converge" in w)
    assert "max_iter = 5" in stopped
    # the unconverged values are named, in increasing order, each one a visited C (which of them
    # stop short after 5 iterations depends on the optimiser's path, not on the definition)
    count = int(stopped.split(" of ")[0])
    listed = [float(v) for v in stopped.split("C = ")[1].split(")")[0].replace(" ...", "").split(", ")]
    assert 2 <= count <= len(cut.val_scores_) and len(listed) == min(count, 5) and listed == sorted(listed)
    visited = [float(c) for c in cut.val_scores_]
    assert all(min(abs(np.log10(v / c)) for c in visited) < 0.01 for v in listed)


def rule_best(values, tried):
    """The documented rule, re-derived: most correct validation rows, then the lowest validation
    NLL (relative differences below 1e-7 count as ties), then the smallest C."""
    most = max(tried[v][0] for v in values)
    tied = sorted(v for v in values if tried[v][0] == most)
    lowest = min(tried[v][1] for v in tied)
    return next(v for v in tied if tried[v][1] <= lowest + 1e-7 * abs(lowest))


def _clip_binary_search(score):
    """The CLIP paper's search (appendix A.3) re-derived on exponents of 10: the 7 coarse values
    every 2 decades, then the neighbours at 1, 1/2, 1/4, 1/8 decade of the best, within 1e-6..1e6."""
    tried = {e: score(10.0 ** e) for e in range(-6, 7, 2)}
    best = rule_best(list(tried), tried)
    for step in (1, 0.5, 0.25, 0.125):
        centre = best
        for e in (centre - step, centre + step):
            if -6 <= e <= 6 and e not in tried:
                tried[e] = score(10.0 ** e)
        best = rule_best([e for e in tried if abs(e - centre) <= step], tried)
    return tried, best


def noisy_problem(seed, n_classes=10, D=128, shots=4, n_val=50, noise=2.0):
    """Few shots, a small validation split: accuracy is flat and multimodal in C."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, D))
    y = np.repeat(np.arange(n_classes), shots)
    X = centres[y] + noise * rng.standard_normal((y.size, D))
    y_val = np.arange(n_val) % n_classes
    return X, y, centres[y_val] + noise * rng.standard_normal((n_val, D)), y_val


def oracle_scorer(X, y, X_val, y_val):
    def score(c):  # validation (correct rows, NLL) of a converged scikit-learn fit at C
        fit = LogisticRegression(C=c, max_iter=100000, tol=1e-10).fit(unit(X), y)
        p = fit.predict_proba(unit(X_val))
        return int(np.sum(p.argmax(axis=1) == y_val)), -np.mean(np.log(p[np.arange(y_val.size), y_val]))
    return score


# few_shot_problem: 2 shots, 100 validation rows; noisy_problem 2, 5, 8: validation accuracy
# over the visited C has two peaks (8: 0.98 at 1e-6 and at 1 .. 56, 0.92 between and above)
SEARCH_CASES = [(few_shot_problem, 1), (few_shot_problem, 2), (few_shot_problem, 5),
                (noisy_problem, 2), (noisy_problem, 5), (noisy_problem, 8)]


@pytest.mark.parametrize(("make", "seed"), SEARCH_CASES)
def test_search_is_the_clip_papers_binary_search_scored_by_converged_fits(make, seed):
    """Every visited C, its validation accuracy and the choice equal the paper's search run on
    converged scikit-learn fits."""
    X, y, X_val, y_val = make(seed=seed)
    model = LinearProbe().fit(X, y, X_val, y_val)
    tried = sorted(float(c) for c in model.val_scores_)
    exponents = np.log10(tried)
    np.testing.assert_allclose(exponents * 8, np.round(exponents * 8), atol=1e-9)  # on the 1/8-decade lattice
    assert len(tried) <= 7 + 8 and all(10.0 ** e in tried for e in range(-6, 7, 2))
    expected, best = _clip_binary_search(oracle_scorer(X, y, X_val, y_val))
    assert np.allclose(sorted(10.0 ** e for e in expected), tried, rtol=1e-12)
    for e, (correct, _) in expected.items():
        assert model.val_scores_[repr(min(tried, key=lambda c: abs(np.log10(c) - e)))] == correct / y_val.size
    assert model.C_ == pytest.approx(10.0 ** best, rel=1e-12)


def test_the_choice_does_not_depend_on_blas_threads_or_the_input_dtype():
    """10 classes x 1,030 dimensions: L-BFGS's vectors (10,310 weights) are long enough for
    OpenBLAS to split its dot products over 2 threads. The warm-started, float32, tol-1e-6
    search chose C = 1e5 with 1 thread and 17.8 with 2 on this case (float32 rows changed other
    cases); converged float64 fits choose one C, with equal validation accuracies."""
    from threadpoolctl import threadpool_limits

    X, y, X_val, y_val = noisy_problem(25, D=1030, shots=4, n_val=40, noise=8.0)
    runs = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            runs.append(LinearProbe().fit(X, y, X_val, y_val))
    with threadpool_limits(1):
        runs.append(LinearProbe().fit(X.astype(np.float32), y, X_val.astype(np.float32), y_val))
    assert [m.C_ for m in runs] == [runs[0].C_] * 3
    assert runs[1].val_scores_ == runs[0].val_scores_ == runs[2].val_scores_
    np.testing.assert_allclose(runs[1].coef_, runs[0].coef_, atol=1e-6 * np.abs(runs[0].coef_).max())
    # float32 rows normalized in float32 differ from these by rounding, and changed the old choice
    X, y, X_val, y_val = noisy_problem(8)
    C64 = LinearProbe().fit(X, y, X_val, y_val).C_
    assert LinearProbe().fit(X.astype(np.float32), y, X_val.astype(np.float32), y_val).C_ == C64


def test_a_near_tied_choice_warns_and_a_clear_one_does_not():
    from solvers import SolverWarning

    X, y, X_val, y_val = noisy_problem(8)  # 49/50 at C = 1e-6 and at 1 .. 56: the choice is NLL's
    with pytest.warns(SolverWarning, match="is a near-tie"):
        model = LinearProbe().fit(X, y, X_val, y_val)
    tie = next(w for w in model.fit_warnings_ if "near-tie" in w)
    assert f"C = {model.C_:.3g}" in tie and "/50" in tie
    assert model.val_scores_[repr(1e-06)] >= model.val_scores_[repr(model.C_)] - 1 / 50
    # 800 validation rows: every C a decade or more from the choice either predicts the same
    # classes (scikit-learn's converged fits) or scores at least two rows lower: no warning
    X, y, X_val, y_val = noisy_problem(3, shots=8, n_val=800, noise=3.0)
    clear = LinearProbe().fit(X, y, X_val, y_val)
    assert not any("near-tie" in w for w in clear.fit_warnings_)

    def predicted(c):
        return LogisticRegression(C=c, max_iter=100000, tol=1e-10).fit(unit(X), y).predict(unit(X_val))

    chosen = predicted(clear.C_)
    for c in (float(v) for v in clear.val_scores_):
        if abs(np.log10(c / clear.C_)) >= 1:
            other = predicted(c)
            assert np.array_equal(other, chosen) or np.sum(other == y_val) <= np.sum(chosen == y_val) - 2


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
    from solvers import SolverWarning

    X, y, X_val, y_val = few_shot_problem(seed=4)
    with pytest.warns(SolverWarning, match="did not converge at C = 1000"):
        model = LinearProbe(C=1000.0, max_iter=3).fit(X, y)
    assert "did not converge" in model.fit_warnings_[0]
    # validation rows that are all the same point: every C has the same accuracy, and the most
    # uniform prediction (the smallest C) has the lowest NLL: the search ends on its lower edge
    X_same = np.repeat(X_val[:1], 30, axis=0)
    with pytest.warns(SolverWarning, match="C = .* is the lower edge"):
        edge = LinearProbe().fit(X, y, X_same, np.arange(30) % 10)
    assert edge.C_ == min(float(c) for c in edge.val_scores_)


def test_float32_features_are_fitted_in_float64_to_the_final_tolerance():
    """scikit-learn fits float32 rows in float32, where tol = 1e-9 cannot be met (the
    objective is only float32-accurate and L-BFGS's line searches stall); the probe fits the
    normalized rows in float64 and reaches the optimum of an independent float64 Newton-CG fit."""
    from scipy.special import logsumexp

    X, y, _ = problem(seed=7, C=5)
    X32 = X.astype(np.float32)
    model = LinearProbe(C=100.0).fit(X32, y)
    rows = unit(X32.astype(np.float64))  # the rows the probe fits: normalized in float64
    oracle = LogisticRegression(C=100.0, solver="newton-cg", tol=1e-14, max_iter=100000).fit(rows, y)

    def objective(W, b):
        Z = rows @ W.T + b
        return 100.0 * np.sum(logsumexp(Z, axis=1) - Z[np.arange(y.size), y]) + 0.5 * np.sum(W ** 2)

    best = objective(oracle.coef_, oracle.intercept_)
    assert model.coef_.dtype == np.float64
    assert abs(objective(model.coef_, model.intercept_) - best) / best < 1e-10


@pytest.mark.parametrize("n_classes", [2, 4])
def test_fit_logistic_with_its_defaults_is_sklearns_lbfgs(n_classes):
    """The defaults (tol 1e-6, 1000 iterations) reach scikit-learn's optimum."""
    from solvers.few_shot.logistic_lbfgs import fit_logistic

    X, y, _ = problem(seed=5, C=n_classes, n=120)
    Xn = unit(X)
    lr = LogisticRegression(C=2.0, tol=1e-12, max_iter=100000, solver="newton-cg").fit(Xn, y)
    fit = fit_logistic(Xn, y, n_classes, 2.0)
    assert fit.coef.shape == lr.coef_.shape and fit.converged and "CONVERGENCE" in fit.message
    assert isinstance(fit.n_iter, int) and 3 <= fit.n_iter < 1000
    np.testing.assert_allclose(fit.coef, lr.coef_, atol=2e-4)
    np.testing.assert_allclose(fit.intercept, lr.intercept_, atol=2e-4)
    capped = fit_logistic(Xn, y, n_classes, 2.0, tol=1e-12, max_iter=2)
    assert capped.n_iter == 2 and not capped.converged and "LIMIT" in capped.message.upper()


def test_class_lists_widths_and_the_chosen_fits_iterations():
    from solvers.errors import InputError

    X, y, centres = problem(seed=6, C=3, n=60)
    names = np.array(["p", "q", "r"])
    rng = np.random.default_rng(7)
    y_val = np.arange(45) % 3
    X_val = centres[y_val] + rng.standard_normal((45, 10))
    named = LinearProbe(C=1.0, classes=names).fit(X, names[y])
    plain = LinearProbe(C=1.0).fit(X, y)
    assert named.classes_.tolist() == names.tolist()
    assert named.predict(X_val).tolist() == names[plain.predict(X_val)].tolist()
    assert plain.val_scores_ is None and plain.n_features_in_ == 10
    with pytest.raises(InputError, match="3"):
        LinearProbe(C=1.0, n_classes=4).fit(X, y)  # class 3 has no rows: refused by name
    with pytest.raises(InputError, match="10"):
        LinearProbe(C=1.0, text_weights=centres).fit(X[:, :9], y)
    with pytest.raises(ValueError, match="10 features"):
        plain.predict(X_val[:, :9])
    with pytest.raises(ValueError, match="X_val"):
        LinearProbe().fit(X, y, X_val[:, :9], y_val)
    searched = LinearProbe(max_iter=200).fit(X, y, X_val, y_val)
    assert isinstance(searched.n_iter_, int) and searched.n_iter_ > 0
    assert plain.temperature == 1.0
    logits = plain.decision_function(X_val)
    p = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(plain.predict_proba(X_val), p / p.sum(1, keepdims=True), atol=1e-12)


def clip_like_split(seed, n_classes=8, D=48, shots=6, n_val=400):
    """CLIP-like rows (a large mean shared by all rows, a decaying noise spectrum, class offsets
    along it; L2-normalized), where the probe's fits run in whitened variables."""
    rng = np.random.default_rng(seed)
    mean = 3.0 * rng.standard_normal(D)
    scales = np.geomspace(2.0, 0.02, D)
    centres = rng.standard_normal((n_classes, D)) * scales

    def draw(labels):
        X = mean + centres[labels] + rng.standard_normal((labels.size, D)) * scales
        return X / np.linalg.norm(X, axis=1, keepdims=True)

    y, y_val = np.repeat(np.arange(n_classes), shots), np.arange(n_val) % n_classes
    return draw(y), y, draw(y_val), y_val


@pytest.mark.parametrize(("float32", "settle"), [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize(("seed", "known"), [(1, 10 ** 1.5), (3, 10 ** (19 / 8))])
def test_the_search_chooses_the_best_C_of_an_exhaustive_cold_fit_search(seed, known, float32, settle, monkeypatch):
    """Every C of the 1/8-decade lattice in 1e-6 .. 1e6 (97 values) fitted cold by scikit-learn
    (tol 1e-10) and ranked by the rule: the best is an interior peak (367/400 at 31.6, neighbours
    at most 364; 378/400 at 237), and the search, 15 fits from whitened, path-started L-BFGS,
    chooses it; also with float32 products forced on every fit (48 rows would not use them:
    their float32 rounding is not far enough below tol), stopped on the float64 gradient; and with
    settled search fits (forced: 48 rows are below SETTLE_WORK), the model then fitted on to tol."""
    from solvers.few_shot import linear_probe, logistic_lbfgs

    if float32:
        monkeypatch.setattr(logistic_lbfgs, "FLOAT32_MARGIN", 0.0)
    settled = []
    if settle:
        monkeypatch.setattr(linear_probe, "SETTLE_WORK", 0)
        monkeypatch.setattr(linear_probe, "SETTLE_VALIDATION_ROWS", 400 / 48)
        fit = logistic_lbfgs.LogisticProblem.fit

        def recorded(*args, **kwargs):
            result = fit(*args, **kwargs)
            settled.append(result.settled)
            return result

        monkeypatch.setattr(logistic_lbfgs.LogisticProblem, "fit", recorded)
    X, y, X_val, y_val = clip_like_split(seed)
    tried = {}
    for j in range(-48, 49):
        p = LogisticRegression(C=10.0 ** (j / 8), tol=1e-10, max_iter=100000).fit(X, y).predict_proba(X_val)
        tried[j] = int(np.sum(p.argmax(axis=1) == y_val)), -np.mean(np.log(p[np.arange(y_val.size), y_val]))
    best = rule_best(list(tried), tried)
    assert 10.0 ** (best / 8) == pytest.approx(known, rel=1e-12) and -40 < best < 40
    model = LinearProbe().fit(X, y, X_val, y_val)
    assert model.C_ == pytest.approx(known, rel=1e-12)
    assert model.val_scores_[repr(model.C_)] == tried[best][0] / y_val.size
    if settle:  # most search fits settled; the model's fit (the last) reached tol
        assert sum(settled) >= 8 and not settled[-1]
        oracle = LogisticRegression(C=model.C_, solver="newton-cg", tol=1e-12, max_iter=100000).fit(X, y)
        best_value = logistic_objective(oracle.coef_, oracle.intercept_, X, y, model.C_)
        assert abs(logistic_objective(model.coef_, model.intercept_, X, y, model.C_) - best_value) < 1e-8 * best_value


@pytest.mark.parametrize(("work", "validation_rows", "above"),
                         [(0, 0, True), (1, 0, False), (0, -1e-9, False)])
def test_search_fits_settle_only_where_a_product_takes_settle_work(work, validation_rows, above, monkeypatch):
    """A problem's product work is rows x columns x outputs (48 x 48 x 8 here), its validation rows
    400 = 8.33 x its 48 rows: at SETTLE_WORK or above and with at most SETTLE_VALIDATION_ROWS x
    the rows, every search fit gets the validation rows' Settle and the chosen C is then fitted
    without it; one more multiply-add needed, or a ratio just below 400 / 48, and no fit settles."""
    from solvers.few_shot import linear_probe, logistic_lbfgs

    X, y, X_val, y_val = clip_like_split(1)
    monkeypatch.setattr(linear_probe, "SETTLE_WORK", 48 * 48 * 8 + work)
    monkeypatch.setattr(linear_probe, "SETTLE_VALIDATION_ROWS", 400 / 48 + validation_rows)
    calls, fit = [], logistic_lbfgs.LogisticProblem.fit
    monkeypatch.setattr(logistic_lbfgs.LogisticProblem, "fit", lambda self, C, start=None, **k: (
        calls.append((C, k["settle"])) or fit(self, C, start, **k)))
    model = LinearProbe().fit(X, y, X_val, y_val)
    if above:
        assert len(calls) == 16 and all(s is not None for _, s in calls[:15]) and calls[15] == (model.C_, None)
        np.testing.assert_array_equal(calls[0][1].rows, unit(X_val))
    else:
        assert len(calls) == 15 and all(s is None for _, s in calls)

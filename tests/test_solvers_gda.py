"""GDA against independent computations: the official KS formula written out with NumPy,
scikit-learn's LDA / covariance estimators, and the Bayes rule of a known Gaussian model."""
import numpy as np
import pytest
from sklearn.covariance import EmpiricalCovariance, LedoitWolf
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from solvers.few_shot.gda import GDA
from solvers.few_shot.sufficient_statistics import class_statistics
from solvers.unlabelled.unsupervised_gda import UnsupervisedGDA


def unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def make_problem(seed=0, C=6, D=12, shots=10, n_test=300, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((C, D))
    y = np.repeat(np.arange(C), shots)
    X = centres[y] + spread * rng.standard_normal((y.size, D))
    y_test = rng.integers(0, C, n_test)
    X_test = centres[y_test] + spread * rng.standard_normal((n_test, D))
    return X, y, X_test, y_test, centres


def official_ks_logits(X, y, X_test, C, priors=None):
    """The estimator of github.com/mrflogs/ICLR24 written out directly (uniform priors unless given)."""
    Xn, Xt = unit(X), unit(X_test)
    mus = np.stack([Xn[y == k].mean(axis=0) for k in range(C)])
    centred = np.concatenate([Xn[y == k] - mus[k] for k in range(C)])
    cov = np.cov(centred.T)
    d, n = centred.shape[1], centred.shape[0]
    P = d * np.linalg.pinv((n - 1) * cov + np.trace(cov) * np.eye(d))
    W = mus @ P
    b = np.log(np.full(C, 1.0 / C) if priors is None else priors) - 0.5 * np.einsum("nd,dc,nc->n", mus, P, mus)
    return Xt @ W.T + b


def test_ks_estimator_matches_official_formula():
    X, y, X_test, _, _ = make_problem()
    model = GDA().fit(X, y)
    expected = official_ks_logits(X, y, X_test, 6)
    np.testing.assert_allclose(model.decision_function(X_test), expected, rtol=1e-7, atol=1e-6)
    assert np.array_equal(model.predict(X_test), expected.argmax(axis=1))


def test_ks_with_text_weights_is_zero_shot_plus_alpha_gda():
    X, y, X_test, _, centres = make_problem(seed=1)
    T = centres + 0.3 * np.random.default_rng(5).standard_normal(centres.shape)
    model = GDA(text_weights=T, alpha=0.1).fit(X, y)
    expected = 100 * unit(X_test) @ unit(T).T + 0.1 * official_ks_logits(X, y, X_test, 6)
    np.testing.assert_allclose(model.decision_function(X_test), expected, rtol=1e-7, atol=1e-5)


def test_float32_features_give_the_float64_formula_within_a_tolerance():
    """The float32 path (float32 products, the rows' norms applied to the product, the validation
    logits of text and GDA in one product) against the official formula in float64, on a problem
    with more dimensions than within-class rows (as few-shot CLIP features)."""
    X, y, X_test, y_test, centres = make_problem(seed=9, C=40, D=96, shots=3, n_test=2000, spread=1.5)
    X_val, y_val = X_test[:400], y_test[:400]
    T = centres + 1.5 * np.random.default_rng(6).standard_normal(centres.shape)
    as32 = {k: v.astype(np.float32) for k, v in {"X": X, "X_val": X_val, "X_test": X_test, "T": T}.items()}
    model = GDA(text_weights=as32["T"]).fit(as32["X"], y, X_val=as32["X_val"], y_val=y_val)
    logits = model.class_logits(as32["X_test"])
    assert logits.dtype == np.float32
    gda, zero_shot = official_ks_logits(X, y, X_test, 40), 100 * unit(X_test) @ unit(T).T
    expected = zero_shot + model.alpha_ * gda
    scale = np.abs(expected).max()
    np.testing.assert_allclose(logits, expected, rtol=0, atol=2e-6 * scale)
    assert np.mean(logits.argmax(axis=1) == expected.argmax(axis=1)) > 0.999
    gda_val, zero_shot_val = official_ks_logits(X, y, X_val, 40), 100 * unit(X_val) @ unit(T).T
    expected_scores = [np.mean((zero_shot_val + a * gda_val).argmax(axis=1) == y_val) for a in model.alphas]
    np.testing.assert_allclose(model.val_scores_, expected_scores, atol=1.5 / y_val.size)  # a near-tie may flip
    assert model.alpha_ == model.alphas[int(np.argmax(model.val_scores_))]
    assert expected_scores[model.alphas.index(model.alpha_)] >= max(expected_scores) - 1.5 / y_val.size


def test_empirical_covariance_matches_sklearn_lda():
    X, y, X_test, _, _ = make_problem(seed=2, C=4, D=8, shots=40)
    model = GDA(covariance="empirical", priors="empirical").fit(X, y)
    lda = LinearDiscriminantAnalysis(solver="lsqr", covariance_estimator=EmpiricalCovariance())
    lda.fit(unit(X), y)
    assert np.array_equal(model.predict(X_test), lda.predict(unit(X_test)))
    np.testing.assert_allclose(model.decision_function(X_test), lda.decision_function(unit(X_test)),
                               rtol=1e-6, atol=1e-6)


def unbalanced_problem(seed=12, counts=(150, 50, 20, 8), D=6, n_test=2000):
    """Overlapping classes of very different sizes drawn in proportion to their counts: the
    priors move many predictions."""
    rng = np.random.default_rng(seed)
    centres = 0.6 * rng.standard_normal((len(counts), D))
    y = np.repeat(np.arange(len(counts)), counts)
    X = centres[y] + rng.standard_normal((y.size, D)) + 2 * np.eye(D)[0]
    y_test = rng.choice(len(counts), n_test, p=np.asarray(counts) / sum(counts))
    X_test = centres[y_test] + rng.standard_normal((n_test, D)) + 2 * np.eye(D)[0]
    return X, y, X_test, y_test


def test_empirical_priors_on_unbalanced_classes_match_sklearn_lda():
    """scikit-learn's LDA estimates the priors from the class frequencies; uniform priors are the
    same model with log(1/C) in place of log(pi_k). The two differ on many test rows here."""
    X, y, X_test, y_test = unbalanced_problem()
    lda = LinearDiscriminantAnalysis(solver="lsqr", covariance_estimator=EmpiricalCovariance()).fit(unit(X), y)
    empirical = GDA(covariance="empirical", priors="empirical").fit(X, y)
    np.testing.assert_allclose(empirical.priors_, np.bincount(y) / y.size)
    np.testing.assert_allclose(lda.priors_, np.bincount(y) / y.size)
    expected = lda.decision_function(unit(X_test))
    np.testing.assert_allclose(empirical.decision_function(X_test), expected, rtol=1e-6, atol=1e-6)
    assert np.array_equal(empirical.predict(X_test), lda.predict(unit(X_test)))
    uniform = GDA(covariance="empirical", priors="uniform").fit(X, y)
    expected_uniform = expected - np.log(lda.priors_) + np.log(1 / 4)
    np.testing.assert_allclose(uniform.decision_function(X_test), expected_uniform, rtol=1e-6, atol=1e-6)
    changed = np.mean(expected.argmax(1) != expected_uniform.argmax(1))
    assert changed > 0.1  # the priors matter: a model that ignored them would fail above
    # on test rows drawn with the training frequencies the empirical priors are the better rule
    assert empirical.score(X_test, y_test) > uniform.score(X_test, y_test) + 0.05


def test_ks_estimator_with_empirical_priors_matches_official_formula():
    X, y, X_test, _ = unbalanced_problem(seed=13)
    model = GDA(priors="empirical").fit(X, y)
    expected = official_ks_logits(X, y, X_test, 4, priors=np.bincount(y) / y.size)
    np.testing.assert_allclose(model.decision_function(X_test), expected, rtol=1e-7, atol=1e-6)
    uniform = official_ks_logits(X, y, X_test, 4)
    assert np.mean(expected.argmax(1) != uniform.argmax(1)) > 0.1


def test_ledoit_wolf_matches_sklearn_estimator_on_centred_features():
    X, y, X_test, _, _ = make_problem(seed=3, C=5, D=20, shots=6)
    model = GDA(covariance="ledoit_wolf").fit(X, y)
    Xn = unit(X)
    mus = np.stack([Xn[y == k].mean(axis=0) for k in range(5)])
    P = LedoitWolf(assume_centered=True).fit(Xn - mus[y]).precision_
    expected = unit(X_test) @ (mus @ P).T - 0.5 * np.einsum("kd,de,ke->k", mus, P, mus)
    assert np.array_equal(model.predict(X_test), expected.argmax(axis=1))
    np.testing.assert_allclose(model.decision_function(X_test), expected + np.log(1 / 5), rtol=1e-6, atol=1e-6)


def test_oas_matches_sklearn_estimator_on_centred_features():
    from sklearn.covariance import OAS

    X, y, X_test, _, _ = make_problem(seed=4)
    model = GDA(covariance="oas").fit(X, y)
    Xn = unit(X)
    mus = np.stack([Xn[y == k].mean(axis=0) for k in range(6)])
    P = np.linalg.pinv(OAS(assume_centered=True).fit(Xn - mus[y]).covariance_)
    expected = unit(X_test) @ (mus @ P).T - 0.5 * np.einsum("kd,de,ke->k", mus, P, mus) + np.log(1 / 6)
    np.testing.assert_allclose(model.decision_function(X_test), expected, rtol=1e-6, atol=1e-6)


def test_bayes_rule_on_shared_covariance_gaussians():
    rng = np.random.default_rng(7)
    C, D = 3, 4
    A = rng.standard_normal((D, D))
    sigma = A @ A.T + 0.5 * np.eye(D)
    means = 1.2 * rng.standard_normal((C, D))
    L = np.linalg.cholesky(sigma)

    def sample(labels):
        return means[labels] + rng.standard_normal((labels.size, D)) @ L.T

    y = np.repeat(np.arange(C), 3000)
    y_test = rng.integers(0, C, 30000)
    X, X_test = sample(y), sample(y_test)
    prec = np.linalg.inv(sigma)
    bayes = (X_test @ prec @ means.T - 0.5 * np.einsum("kd,de,ke->k", means, prec, means)).argmax(axis=1)
    bayes_acc = np.mean(bayes == y_test)
    gda_acc = GDA(normalize=False).fit(X, y).score(X_test, y_test)
    assert abs(gda_acc - bayes_acc) < 0.01


def test_streamed_statistics_match_direct_computation_and_fit():
    X, y, X_test, _, _ = make_problem(seed=8, shots=15)
    order = np.random.default_rng(0).permutation(y.size)
    chunks = [(X[order[i:i + 17]], y[order[i:i + 17]]) for i in range(0, y.size, 17)]
    stats = class_statistics(chunks, n_classes=6, n_features=12)
    Xn = unit(X)
    mus = np.stack([Xn[y == k].mean(axis=0) for k in range(6)])
    np.testing.assert_array_equal(stats.counts, np.bincount(y))
    np.testing.assert_allclose(stats.sums, mus * 15, atol=1e-12)
    np.testing.assert_allclose(stats.scatter, (Xn - mus[y]).T @ (Xn - mus[y]), atol=1e-12)
    streamed = GDA.from_statistics(stats.counts, stats.sums, stats.scatter)
    direct = GDA().fit(X, y)
    np.testing.assert_allclose(streamed.decision_function(X_test), direct.decision_function(X_test),
                               rtol=1e-9, atol=1e-9)


def test_alpha_is_the_best_validation_alpha():
    X, y, X_test, _, centres = make_problem(seed=9, spread=1.5)
    rng = np.random.default_rng(1)
    T = centres + rng.standard_normal(centres.shape)
    y_val = rng.integers(0, 6, 200)
    X_val = centres[y_val] + 1.5 * rng.standard_normal((200, 12))
    model = GDA(text_weights=T).fit(X, y, X_val, y_val)
    zs = 100 * unit(X_val) @ unit(T).T
    gda = official_ks_logits(X, y, X_val, 6)
    accs = [np.mean((zs + a * gda).argmax(1) == y_val) for a in model.alphas]
    assert model.alpha_ == model.alphas[int(np.argmax(accs))]
    assert GDA(text_weights=T).fit(X, y).alpha_ == 1.0


def test_unsupervised_gda_fits_on_confident_zero_shot_pseudo_labels():
    rng = np.random.default_rng(11)
    C, D = 5, 16
    centres = rng.standard_normal((C, D))
    T = centres + 0.5 * rng.standard_normal((C, D))
    y = rng.integers(0, C, 400)
    X = centres[y] + 0.7 * rng.standard_normal((400, D))
    model = UnsupervisedGDA(text_weights=T, k_per_class=8).fit(X)
    zs = 100 * unit(X) @ unit(T).T
    p = np.exp(zs - zs.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels, conf = p.argmax(1), p.max(1)
    keep = np.concatenate([np.flatnonzero(labels == k)[np.argsort(-conf[labels == k], kind="stable")[:8]]
                           for k in range(C)])
    assert all(np.any(labels == k) for k in range(C))  # no class to fill (tests/test_solvers_label_free.py)
    expected = GDA(text_weights=T, alpha=1.0).fit(X[keep], labels[keep])
    np.testing.assert_allclose(model.decision_function(X), expected.decision_function(X), rtol=1e-6, atol=1e-6)
    assert model.n_pseudo_ == keep.size
    assert UnsupervisedGDA(text_weights=T, k_per_class=8, rounds=3).fit(X).score(X, y) > 0.5


def test_one_shot_without_text_falls_back_to_nearest_class_mean():
    """One row per class: zero within-class scatter made every logit equal (chance); the
    identity covariance gives the nearest class mean, computed here by brute force."""
    import pytest

    from solvers import SolverWarning

    X, y, X_test, y_test, _ = make_problem(seed=5, shots=1, spread=0.8)
    with pytest.warns(SolverWarning, match="falls back to the identity"):
        model = GDA().fit(X, y)
    assert model.covariance_fallback_ == "identity" and len(model.fit_warnings_) == 1
    np.testing.assert_array_equal(model.precision_, np.eye(X.shape[1]))
    np.testing.assert_array_equal(model.coef_, model.means_ @ np.eye(X.shape[1]))  # the means, entry for entry
    np.testing.assert_array_equal(model.coef_, unit(X)[np.argsort(y)])
    distances = ((unit(X_test)[:, None, :] - unit(X)[None, :, :]) ** 2).sum(axis=2)
    assert np.array_equal(model.predict(X_test), y[distances.argmin(axis=1)])
    assert model.score(X_test, y_test) > 0.5
    assert GDA().fit(*make_problem(seed=5)[:2]).covariance_fallback_ is None


def test_alpha_on_the_grid_edge_warns_and_is_recorded():
    """Perfect text weights and GDA statistics from unrelated labels: the smallest alpha wins
    (the grid's lower edge); a fixed alpha searches nothing and warns about nothing."""
    import warnings

    import pytest

    from solvers import SolverWarning

    X, _, X_val, y_val, centres = make_problem(seed=11, spread=0.3)
    y_noise = np.arange(X.shape[0]) % 6
    with pytest.warns(SolverWarning, match=r"alpha = 0.0001 is the lower edge"):
        model = GDA(text_weights=centres).fit(X, y_noise, X_val, y_val)
    assert model.alpha_ == 1e-4 and "lower edge" in model.fit_warnings_[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SolverWarning)
        assert GDA(text_weights=centres, alpha=1.0).fit(X, y_noise, X_val, y_val).fit_warnings_ == []


def test_fs_solve_reports_the_fallback_in_its_json(tmp_path, capsys):
    import json

    from tests.cli_runner import run
    from tests.store_fixtures import make_feature_store

    X, y, X_test, y_test, _ = make_problem(seed=6, shots=3)
    path = make_feature_store(tmp_path / "s.h5", {"train": X, "test": X_test}, labels={"train": y, "test": y_test})
    code, out, err = run(["solve", "gda", "--store", path, "--train", "train", "--test", "test", "--shots", "1",
                          "--json", "-q"], capsys)
    assert code == 0, err
    warnings = json.loads(out)["runs"][0]["warnings"]
    assert sum("falls back to the identity (nearest class mean)" in w for w in warnings) == 1
    assert "falls back to the identity" in err


def test_partial_fit_with_a_class_list_equals_fit_on_the_union(tmp_path):
    """String labels through a class list (given on the first call, or the constructor's), classes
    arriving over three sessions, a saved and reloaded model taking the third; each step equals
    ``fit`` on the union of the rows (with text weights: the seen classes' rows of the bank)."""
    import pytest

    from solvers.errors import InputError
    from solvers.persistence import load_npz, save_npz

    rng = np.random.default_rng(21)
    names = np.array(["ant", "bee", "cat", "dog", "eel"])
    centres = rng.standard_normal((5, 7))
    y = np.repeat(np.arange(5), 6)
    X = centres[y] + 0.7 * rng.standard_normal((30, 7))
    X_test = centres[rng.integers(0, 5, 50)] + 0.7 * rng.standard_normal((50, 7))
    rows = np.arange(30)
    sessions = [y < 2, (y == 2) | ((y == 3) & (rows < 21)), rows >= 21]  # "dog" in two sessions, then "eel"
    for covariance in ("ks", "empirical"):
        for kwargs, first in (({}, {"classes": names}), ({"classes": names}, {})):
            model = GDA(covariance=covariance, **kwargs)
            seen = np.zeros(30, bool)
            for i, part in enumerate(sessions):
                seen |= part
                model.partial_fit(X[part], names[y[part]], **(first if i == 0 else {}))
                expected = GDA(covariance=covariance, classes=names[:y[seen].max() + 1]).fit(X[seen], names[y[seen]])
                np.testing.assert_allclose(model.decision_function(X_test), expected.decision_function(X_test),
                                           rtol=1e-8, atol=1e-8)
                assert model.classes_.tolist() == names[:y[seen].max() + 1].tolist()
                assert model.predict(X_test).tolist() == expected.predict(X_test).tolist()
                if i == 1:
                    save_npz(model, tmp_path / f"gda-{covariance}-{len(kwargs)}")
                    model = load_npz(tmp_path / f"gda-{covariance}-{len(kwargs)}")
                    assert list(model.partial_classes_) == names.tolist()
    with pytest.raises(InputError, match="classes differ from the list given on the first partial_fit call"):
        GDA().partial_fit(X[:6], names[y[:6]], classes=names).partial_fit(X[6:12], names[y[6:12]],
                                                                         classes=names[::-1])
    with pytest.raises(InputError, match="y has label 2 but n_classes is 2"):
        GDA(n_classes=2).partial_fit(X[:18], y[:18])
    with pytest.raises(InputError, match=r"partial_fit supports 'ks' and 'empirical'"):
        GDA(covariance="ledoit_wolf").partial_fit(X, y)
    with pytest.raises(ValueError, match="7 features"):
        GDA().partial_fit(X[:12], y[:12]).partial_fit(X[12:18, :6], y[12:18])


def test_partial_fit_with_text_weights_and_a_validation_pair():
    """With a bank of 5 rows, integer labels of 3 seen classes: the zero-shot term uses the first 3
    rows; alpha is searched on this call's validation pair like ``fit`` on the same rows does."""
    import pytest

    from solvers.errors import InputError

    rng = np.random.default_rng(22)
    centres = rng.standard_normal((5, 6))
    T = centres + 0.5 * rng.standard_normal((5, 6))
    y = np.repeat(np.arange(3), 8)
    X = centres[y] + 0.6 * rng.standard_normal((24, 6))
    y_val = rng.integers(0, 3, 60)
    X_val = centres[y_val] + 0.6 * rng.standard_normal((60, 6))
    model = GDA(text_weights=T, logit_scale=30.0).partial_fit(X, y, X_val, y_val)
    zs = 30.0 * unit(X_val) @ unit(T[:3]).T
    gda = official_ks_logits(X, y, X_val, 3)
    accs = [np.mean((zs + a * gda).argmax(1) == y_val) for a in model.alphas]
    np.testing.assert_allclose(model.val_scores_, accs)
    assert model.alpha_ == model.alphas[int(np.argmax(accs))]
    np.testing.assert_allclose(model.decision_function(X_val), zs + model.alpha_ * gda, rtol=1e-7, atol=1e-6)
    with pytest.raises(InputError, match="6"):
        GDA(text_weights=T).partial_fit(X[:, :5], y)
    with pytest.raises(InputError, match="label 5"):
        GDA(text_weights=T).partial_fit(X, y + 3)


def test_validation_scores_are_every_alphas_accuracy():
    """Unbalanced classes with empirical priors and logit_scale 20: the intercept log pi_k -
    1/2 mu P mu^T and the scale both enter the searched logits; every alpha's validation accuracy
    is re-derived, not only the winner. from_statistics searches the same way."""
    X, y, _, _ = unbalanced_problem(seed=14)
    rng = np.random.default_rng(2)
    centres = np.stack([unit(X[y == k]).mean(0) for k in range(4)])
    T = centres + 0.3 * rng.standard_normal(centres.shape)
    X_val, y_val = unbalanced_problem(seed=15)[2:]
    model = GDA(text_weights=T, priors="empirical", logit_scale=20.0, alphas=(0.01, 0.1, 1.0, 10.0, 100.0))
    model.fit(X, y, X_val, y_val)
    zs = 20.0 * unit(X_val) @ unit(T).T
    gda = official_ks_logits(X, y, X_val, 4, priors=np.bincount(y) / y.size)
    accs = [np.mean((zs + a * gda).argmax(1) == y_val) for a in model.alphas]
    np.testing.assert_allclose(model.val_scores_, accs)
    assert len(set(accs)) > 2 and model.alpha_ == model.alphas[int(np.argmax(accs))]
    stats = class_statistics([(X, y)], n_classes=4, n_features=X.shape[1])
    streamed = GDA.from_statistics(stats.counts, stats.sums, stats.scatter, X_val=X_val, y_val=y_val,
                                   text_weights=T, priors="empirical", logit_scale=20.0, alphas=model.alphas)
    np.testing.assert_allclose(streamed.val_scores_, accs)
    np.testing.assert_allclose(streamed.decision_function(X_val), model.decision_function(X_val), rtol=1e-8, atol=1e-8)
    plain = GDA().fit(X, y)
    assert plain.alpha_ is None and plain.val_scores_ is None


def test_fit_in_row_blocks_equals_one_pass(monkeypatch):
    import solvers.few_shot.gda as gda_module

    X, y, X_test, _, _ = make_problem(seed=16, D=5, shots=7)
    expected = official_ks_logits(X, y, X_test, 6)
    monkeypatch.setattr(gda_module, "FIT_BLOCK_ROWS", 4)  # 42 rows in 11 blocks, fewer than D columns each
    np.testing.assert_allclose(GDA().fit(X, y).decision_function(X_test), expected, rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(GDA().partial_fit(X, y).decision_function(X_test), expected, rtol=1e-7, atol=1e-6)


def test_a_full_fit_forgets_partial_statistics():
    X, y, X_test, _, _ = make_problem(seed=17)
    model = GDA().partial_fit(X[y < 3], y[y < 3])
    model.fit(X[y >= 3], y[y >= 3] - 3)
    for name in ("stat_counts_", "stat_sums_", "stat_scatter_", "partial_classes_"):
        assert not hasattr(model, name)
    arrays, _ = model.get_state()
    assert not any(k.startswith("stat_") for k in arrays)
    np.testing.assert_allclose(model.decision_function(X_test), official_ks_logits(X[y >= 3], y[y >= 3] - 3,
                                                                                   X_test, 3), rtol=1e-7, atol=1e-6)


def test_inputs_are_checked_against_the_bank_and_the_fitted_width():
    import pytest

    from solvers.errors import InputError

    X, y, X_test, _, centres = make_problem(seed=18)
    with pytest.raises(InputError, match="12"):
        GDA(text_weights=centres).fit(X[:, :11], y)
    with pytest.raises(InputError, match=r"label\(s\) 6 not among the 6 classes"):
        GDA(text_weights=centres[:6]).fit(X, np.where(y == 5, 6, y))
    stats = class_statistics([(X, y)], n_classes=6, n_features=12)
    with pytest.raises(InputError, match="sums has 12 features but text_weights has 11"):
        GDA.from_statistics(stats.counts, stats.sums, stats.scatter, text_weights=centres[:, :11])
    with pytest.raises(InputError, match="from_statistics supports 'ks' and 'empirical'"):
        GDA.from_statistics(stats.counts, stats.sums, stats.scatter, covariance="oas")
    model = GDA(text_weights=centres).fit(X, y)
    with pytest.raises(ValueError, match="12 features"):
        model.predict(X_test[:, :11])
    with pytest.raises(ValueError, match="X_val"):
        GDA(text_weights=centres).fit(X, y, X_test[:, :11], y[:300])
    with pytest.raises(InputError, match="covariance must be one of"):
        GDA(covariance="shrunk").fit(X, y)
    with pytest.raises(InputError, match="priors must be 'uniform' or 'empirical'"):
        GDA(priors="flat").fit(X, y)


def test_constructor_classes_and_class_count():
    import pytest

    from solvers.errors import InputError

    X, y, X_test, _, _ = make_problem(seed=19, C=3)
    names = np.array(["x", "y", "z"])
    named = GDA(classes=["x", "y", "z"]).fit(X, names[y])
    assert named.classes_.tolist() == ["x", "y", "z"]
    assert named.predict(X_test).tolist() == names[GDA().fit(X, y).predict(X_test)].tolist()
    with pytest.raises(InputError, match="3"):
        GDA(n_classes=4).fit(X, y)  # class 3 has no rows: refused by name
    model = GDA().fit(X, y)
    assert model.temperature == 1.0
    logits = model.decision_function(X_test)
    p = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(X_test), p / p.sum(1, keepdims=True), atol=1e-12)


def test_inverse_of_singular_and_ill_conditioned_matrices_is_the_pseudo_inverse():
    from solvers.few_shot.gda import _inv_symmetric

    rng = np.random.default_rng(20)
    V, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    for eigenvalues in ([3, 2, 1, 0.5, 0.1, 0.0],  # singular: Cholesky fails
                        [3, 2, 1, 0.5, 0.1, 1e-16]):  # below the pseudo-inverse's cut, rcond ~ 1e-17
        A = (V * eigenvalues) @ V.T
        A = (A + A.T) / 2
        keep = np.asarray(eigenvalues) > 1e-9
        expected = (V[:, keep] / np.asarray(eigenvalues)[keep]) @ V[:, keep].T
        np.testing.assert_allclose(_inv_symmetric(A), expected, atol=1e-6)
    A = (V * [3, 2, 1, 0.5, 0.1, 0.05]) @ V.T
    np.testing.assert_allclose(_inv_symmetric(A), np.linalg.inv(A), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(_inv_symmetric(np.asfortranarray(A, dtype=np.float32)), np.linalg.inv(A),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("covariance", ["ks", "empirical"])
def test_weights_solved_with_the_cholesky_factor_equal_the_inverse_formula(covariance):
    """The fit solves U^T U W^T = means^T for the weights (no inverse): W and b within float64
    rounding of means @ P with P the explicit inverse, the float32 logits within one ulp of those
    of the explicit weights, and ``precision_``, formed when read, the explicit P to the bit
    (``shrinkage_precision`` / the inverse of S / N), also after a save and load."""
    import solvers.few_shot.gda as gda_module
    from solvers.few_shot.gda import _inv_symmetric, shrinkage_precision
    from solvers.few_shot.sufficient_statistics import ClassStatistics

    X, y, X_test, _, centres = make_problem(seed=23, C=30, D=64, shots=4, n_test=500, spread=1.2)
    T = centres + np.random.default_rng(24).standard_normal(centres.shape)
    model = GDA(covariance=covariance, text_weights=T, alpha=0.3).fit(X, y)
    assert "_precision_factor" in vars(model)  # the weights came from the factor; P not formed yet
    stats = ClassStatistics.of_chunk(X, y, 30, normalize=True)
    n = y.size
    P = shrinkage_precision(stats.scatter, n) if covariance == "ks" else _inv_symmetric(stats.scatter / n)
    W = stats.means @ P
    b = np.log(np.full(30, 1 / 30)) - 0.5 * np.einsum("cd,cd->c", W, stats.means)
    np.testing.assert_allclose(model.coef_, W, rtol=0, atol=1e-12 * np.abs(W).max())
    np.testing.assert_allclose(model.intercept_, b, rtol=0, atol=1e-12 * np.abs(b).max())
    explicit = GDA(covariance=covariance, text_weights=T, alpha=0.3).fit(X, y)
    explicit.coef_, explicit.intercept_ = W, b
    Xt = X_test.astype(np.float32)
    np.testing.assert_array_max_ulp(model.class_logits(Xt), explicit.class_logits(Xt), maxulp=1)
    np.testing.assert_array_equal(model.precision_, P)
    assert "_precision_factor" not in vars(model)
    matrix = model._estimator_matrix(stats, n)  # one Fortran-ordered array, the numbers of the expressions
    assert matrix.flags.f_contiguous
    np.testing.assert_array_equal(matrix, gda_module._shrunk_scatter(stats.scatter, n) if covariance == "ks"
                                  else stats.scatter / n)
    fresh = GDA(covariance=covariance, text_weights=T, alpha=0.3).fit(X, y)
    arrays, params = fresh.get_state()  # saving reads precision_: formed from the factor
    np.testing.assert_array_equal(arrays["precision_"], P)
    loaded = GDA.from_state(arrays, params)
    np.testing.assert_array_equal(loaded.precision_, P)
    np.testing.assert_array_equal(loaded.class_logits(Xt), fresh.class_logits(Xt))
    fresh.precision_ = np.eye(64)  # set explicitly: replaces what the factor would give
    assert "_precision_factor" not in vars(fresh) and np.array_equal(fresh.precision_, np.eye(64))
    with pytest.raises(AttributeError, match="precision_"):
        assert GDA().precision_ is None


def test_class_sums_are_np_add_at_to_the_bit_and_statistics_take_raw_integer_rows():
    import pytest

    from solvers.errors import InputError
    from solvers.few_shot.sufficient_statistics import ClassStatistics, _class_sums

    rng = np.random.default_rng(23)
    y = rng.permutation(np.repeat(np.arange(5), [64, 1, 30, 17, 2]))  # labels in shuffled order
    X = (rng.standard_normal((y.size, 9)) * 10 ** rng.uniform(-3, 3, (y.size, 1))).astype(np.float32)
    expected = np.zeros((5, 9), np.float32)
    np.add.at(expected, y, X)
    got = _class_sums(X, y, np.bincount(y), 5)
    assert got.dtype == np.float32 and np.array_equal(got, expected)  # the same additions in the same order
    # integer rows, not normalized: statistics of the raw values, accumulated in float32
    Xi = rng.integers(-5, 6, (40, 3))
    yi = np.arange(40) % 4
    stats = class_statistics([(Xi[:25], yi[:25]), (Xi[25:], yi[25:])], n_classes=4, n_features=3, normalize=False)
    mus = np.stack([Xi[yi == k].mean(0) for k in range(4)])
    np.testing.assert_allclose(stats.sums, mus * 10, rtol=1e-6)
    np.testing.assert_allclose(stats.scatter, (Xi - mus[yi]).T @ (Xi - mus[yi]), rtol=1e-5, atol=1e-4)
    with pytest.raises(InputError, match="cannot shrink statistics of 4 classes to 3"):
        stats.grow(3)
    with pytest.raises(InputError, match=r"cannot merge statistics of shape \(2, 3\) into \(4, 3\)"):
        stats.merge(ClassStatistics.empty(2, 3))


def test_partial_fit_class_list_checks_raw_rows_and_numeric_lists(tmp_path):
    import pytest

    from solvers.errors import InputError
    from solvers.persistence import load_npz, save_npz

    rng = np.random.default_rng(24)
    centres = rng.standard_normal((3, 5))
    y = np.repeat(np.arange(3), 6)
    X = 3 * centres[y] + rng.standard_normal((18, 5))
    ids = np.array([10, 20, 30])
    model = GDA(n_classes=3).partial_fit(X[y < 2], ids[y[y < 2]], classes=ids)
    model.partial_fit(X[y == 2], ids[y[y == 2]], classes=ids)  # the same list again: accepted
    save_npz(model, tmp_path / "ids")
    back = load_npz(tmp_path / "ids")
    assert np.asarray(back.partial_classes_).tolist() == [10, 20, 30]
    back.partial_fit(X[:3], ids[y[:3]])
    union = GDA(classes=ids).fit(np.vstack([X, X[:3]]), ids[np.concatenate([y, y[:3]])])
    np.testing.assert_allclose(back.decision_function(X), union.decision_function(X), rtol=1e-8, atol=1e-8)
    with pytest.raises(InputError, match="classes has 3 labels but text_weights has 4 rows"):
        GDA(text_weights=np.eye(4, 5)).partial_fit(X, ids[y], classes=ids)
    with pytest.raises(InputError, match="classes has 3 labels but text_weights has 4 rows"):
        GDA(text_weights=np.eye(4, 5), classes=ids).partial_fit(X, ids[y])
    raw = GDA(normalize=False).partial_fit(X, y)
    np.testing.assert_allclose(raw.decision_function(X), GDA(normalize=False).fit(X, y).decision_function(X),
                               rtol=1e-8, atol=1e-8)
    assert not np.allclose(raw.decision_function(X), GDA().fit(X, y).decision_function(X))
    names = np.array(["z", "a", "m"])[y]
    assert GDA().fit(X, names).classes_.tolist() == ["a", "m", "z"]  # the sorted labels, without a list


def test_pseudo_inverse_cut_and_cholesky_failures_on_exact_diagonals():
    """Exact diagonals: a zero pivot makes Cholesky fail; a pivot of 1e-20 or 5e-16 passes
    Cholesky but not its condition check, and the pseudo-inverse drops eigenvalues at or below
    max * D * eps (here 2.7e-15), where a Cholesky inverse would give 1e20 or 2e15."""
    from solvers.few_shot.gda import _inv_symmetric

    for small in (0.0, 1e-20, 5e-16):
        np.testing.assert_array_equal(_inv_symmetric(np.diag([3.0, 2.0, small, 1.0])), np.diag([1 / 3, 0.5, 0.0, 1.0]))
    np.testing.assert_allclose(_inv_symmetric(np.diag([3.0, 2.0, 1e-6, 1.0])), np.diag([1 / 3, 0.5, 1e6, 1.0]),
                               rtol=1e-12)


@pytest.mark.parametrize("library", ["numpy", "scipy"])
@pytest.mark.parametrize("n", [1, 7, 64, 300, 700])
def test_cholesky_routines_through_numpys_openblas_equal_scipys(n, library, monkeypatch):
    """``cholesky_lapack`` calls dpotrf/dpocon/dpotri/dpotrs in the OpenBLAS NumPy loaded (no scipy.linalg
    import on the path of ``fs solve gda``): the same factor and info as SciPy's wrappers, the same
    condition estimate, inverse and solution to rounding, Fortran-ordered as SciPy returns them; a matrix that
    is not positive definite gives LAPACK's info. Without that library SciPy's wrappers answer."""
    from scipy.linalg.lapack import dpocon, dpotrf, dpotri, dpotrs

    from solvers.few_shot import cholesky_lapack as cl

    if library == "numpy" and cl.numpy_lapack() is None:
        pytest.skip("this NumPy build does not ship scipy-openblas64")
    if library == "scipy":
        monkeypatch.setattr(cl, "numpy_lapack", lambda: None)
    rng = np.random.default_rng(n)
    X = rng.standard_normal((3 * n + 2, n))
    A = X.T @ X + 1e-3 * np.eye(n)
    anorm = float(np.abs(A).sum(axis=0).max())
    expected, info = dpotrf(A, lower=0, clean=0)
    factor, got_info = cl.potrf_upper(A)
    assert got_info == info == 0 and factor.flags.f_contiguous
    np.testing.assert_array_equal(factor, expected)
    own = np.array(A, order="F")
    in_place, got_info = cl.potrf_upper(own, overwrite=True)
    assert got_info == 0 and np.shares_memory(in_place, own)  # computed in the array given
    np.testing.assert_array_equal(in_place, expected)
    rcond, got_info = cl.pocon_upper(factor, anorm)
    assert got_info == 0 and rcond == pytest.approx(float(dpocon(expected, anorm, uplo="U")[0]), rel=1e-12)
    inverse, got_info = cl.potri_upper(factor.copy(order="F"))
    upper = np.triu_indices(n)
    assert got_info == 0 and inverse.flags.f_contiguous
    np.testing.assert_allclose(inverse[upper], dpotri(expected, lower=0)[0][upper], rtol=1e-13, atol=0)
    np.testing.assert_allclose((np.triu(inverse) + np.triu(inverse, 1).T) @ A, np.eye(n), atol=1e-8)
    B = rng.standard_normal((n, 5))
    solution, got_info = cl.potrs_upper(factor, B)
    assert got_info == 0 and solution.flags.f_contiguous and solution.shape == (n, 5)
    np.testing.assert_allclose(solution, dpotrs(expected, B, lower=0)[0], rtol=1e-12,
                               atol=1e-12 * np.abs(solution).max())
    np.testing.assert_allclose(A @ solution, B, atol=1e-8)
    bad = A.copy()
    bad[n // 2, n // 2] = -1.0
    assert cl.potrf_upper(bad)[1] == dpotrf(bad, lower=0, clean=0)[1] > 0


def test_fs_solve_gda_imports_no_scipy(tmp_path):
    """Process start of `fs solve gda` on a store: scipy.linalg (a few hundred modules and a second
    OpenBLAS) is not imported when NumPy's own OpenBLAS has the Cholesky routines."""
    import subprocess
    import sys

    from solvers.few_shot.cholesky_lapack import numpy_lapack

    if numpy_lapack() is None:
        pytest.skip("this NumPy build does not ship scipy-openblas64: SciPy's LAPACK is used")
    from featurestore.store.feature_store import FeatureStore

    rng = np.random.default_rng(0)
    path = tmp_path / "s.h5"
    with FeatureStore(path, mode="a") as store:
        store.ensure_encoder("e", {"model": "m", "weights": "w", "embed_dim": 8})
        for split, n in (("train", 40), ("test", 30)):
            y = np.arange(n) % 4
            rows = store.add_rows(split, [f"{split}{i}" for i in range(n)], [""] * n, y.tolist(),
                                  classes=["a", "b", "c", "d"])
            store.prepare_features("e", split, 8)
            store.begin_appending()
            store.write_features("e", split, rows, rng.standard_normal((n, 8)).astype(np.float32),
                                 np.ones(n, bool), [""] * n)
    code = ("import sys; from cli.main import main\n"
            "try:\n    main(['solve', 'gda', '--store', sys.argv[1], '--train', 'train', '--test', 'test'])\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'sklearn', 'torch', 'pandas')))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    assert "test accuracy" in out and out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_chunk_statistics_normalized_in_place_equal_the_plain_expressions_to_the_bit(dtype, order, monkeypatch):
    """``ClassStatistics.of_chunk(X, y, C, normalize)`` normalizes and centres the rows in one
    buffer, block by block: the same bits as the statistics of ``l2_normalize(X)`` written out
    (bincount, np.add.at sums, X - means[y], its scatter), zero rows included."""
    from solvers.few_shot import sufficient_statistics as ss

    monkeypatch.setattr(ss, "ROW_BLOCK", 37)  # several blocks, the last one shorter
    rng = np.random.default_rng(5)
    X = np.asarray(rng.standard_normal((500, 40)), dtype=dtype, order=order)
    X[7] = 0
    y = rng.integers(0, 9, 500)
    for normalize in (True, False):
        norms = np.sqrt(np.add.reduce(X * X, axis=1, keepdims=True))
        norms[norms == 0] = 1
        Xn = X / norms if normalize else X
        counts = np.bincount(y, minlength=9)
        sums = np.zeros((9, 40), dtype=dtype)
        np.add.at(sums, y, Xn)
        centred = np.ascontiguousarray(Xn - (sums / counts[:, None].astype(dtype))[y])
        stats = ss.ClassStatistics.of_chunk(X, y, 9, normalize)
        np.testing.assert_array_equal(stats.counts, counts)
        np.testing.assert_array_equal(stats.sums, sums.astype(np.float64))
        np.testing.assert_array_equal(stats.scatter, (centred.T @ centred).astype(np.float64))


def test_validation_zero_shot_logits_are_reused_only_for_equal_rows_and_weights(monkeypatch):
    """Cells of one sweep search alpha on the same validation rows and text weights: the zero-shot
    half of the validation logits is computed once and reused while rows and weights are equal
    element by element (a row changed in place, other weights or another scale compute it again).
    Both halves, float32, stay within rounding of the float64 formula, and each fit's choice equals
    a fresh process's (the cache emptied)."""
    import solvers.few_shot.gda as gda_module

    X, y, X_test, y_test, centres = make_problem(seed=21, C=30, D=64, shots=4, n_test=900, spread=1.2)
    T = (centres + 1.2 * np.random.default_rng(3).standard_normal(centres.shape)).astype(np.float32)
    X_val, y_val = X_test[:600].astype(np.float32), y_test[:600]
    products = []
    original = gda_module._zero_shot_of_rows

    def counted(Xn, M):
        before = gda_module._LAST_ZERO_SHOT
        out = original(Xn, M)
        products.append(gda_module._LAST_ZERO_SHOT is not before)
        return out

    monkeypatch.setattr(gda_module, "_zero_shot_of_rows", counted)

    def fit(shots, X_val=X_val, T=T, scale=100.0, fresh=False):
        if fresh:
            monkeypatch.setattr(gda_module, "_LAST_ZERO_SHOT", None)
        rows = np.flatnonzero(np.arange(y.size) % 4 < shots)
        return GDA(text_weights=T, logit_scale=scale).fit(X[rows].astype(np.float32), y[rows], X_val, y_val)

    monkeypatch.setattr(gda_module, "_LAST_ZERO_SHOT", None)
    models = [fit(s) for s in (2, 3, 4)]
    assert products == [True, False, False]
    for shots, model in zip((2, 3, 4), models):
        alone = fit(shots, fresh=True)
        assert alone.val_scores_ == model.val_scores_ and alone.alpha_ == model.alpha_
        rows = np.flatnonzero(np.arange(y.size) % 4 < shots)
        zs, gda = model._logit_parts(X_val)
        gda64 = official_ks_logits(X[rows], y[rows], X_val.astype(np.float64), 30)
        zs64 = 100 * unit(X_val.astype(np.float64)) @ unit(T.astype(np.float64)).T
        np.testing.assert_allclose(zs, zs64, rtol=0, atol=2e-6 * np.abs(zs64).max())
        np.testing.assert_allclose(gda, gda64, rtol=0, atol=2e-6 * np.abs(gda64).max())
    products.clear()
    changed = X_val.copy()
    fit(4, X_val=changed)
    normalized = gda_module._LAST_NORMALIZED[1]
    fit(3, X_val=changed)
    assert gda_module._LAST_NORMALIZED[1] is normalized  # equal rows: normalized once
    changed[7, 3] += 0.5  # the same array, one element changed in place
    model = fit(4, X_val=changed)
    assert gda_module._LAST_NORMALIZED[1] is not normalized
    np.testing.assert_array_equal(gda_module._LAST_NORMALIZED[1], unit(changed))
    fit(4, X_val=changed, T=T[::-1].copy())
    fit(4, X_val=changed, scale=50.0)
    assert products == [False, False, True, True, True]
    zs = model._logit_parts(changed)[0]
    np.testing.assert_allclose(zs, 100 * unit(changed.astype(np.float64)) @ unit(T.astype(np.float64)).T,
                               rtol=0, atol=2e-4)


def test_one_block_fit_equals_its_statistics_merged_into_zeros_to_the_bit():
    """A fit of one row block takes that block's statistics as they are; merged into zero
    statistics (the streamed path) they give the same model, every array equal to the bit."""
    from solvers.few_shot.sufficient_statistics import ClassStatistics

    X, y, X_test, _, centres = make_problem(seed=23, C=8, D=40, shots=5)
    X = X.astype(np.float32)
    T = centres + 0.4 * np.random.default_rng(4).standard_normal(centres.shape)
    model = GDA(text_weights=T, alpha=0.5).fit(X, y)
    stats = ClassStatistics.empty(8, 40).update(X, y, normalize=True)
    streamed = GDA.from_statistics(stats.counts, stats.sums, stats.scatter, text_weights=T, alpha=0.5)
    for name in ("means_", "precision_", "coef_", "intercept_"):
        assert np.array_equal(getattr(model, name), getattr(streamed, name)), name
    assert np.array_equal(model.class_logits(X_test.astype(np.float32)),
                          streamed.class_logits(X_test.astype(np.float32)))


@pytest.mark.parametrize("alpha_type", [float, np.float64, np.float32])
def test_alpha_search_scores_are_the_plain_expression_for_every_alpha_type(alpha_type):
    """The search writes zs + a * gda into one buffer; its accuracies equal those of the plain
    expression under NumPy's promotion for each alpha type (a NumPy float64 alpha promotes float32
    logits to float64, and the search then computes it as written)."""
    X, y, X_test, y_test, centres = make_problem(seed=25, C=12, D=32, shots=3, n_test=500, spread=1.4)
    T = (centres + 1.0 * np.random.default_rng(8).standard_normal(centres.shape)).astype(np.float32)
    alphas = tuple(alpha_type(a) for a in (1e-3, 0.3, 1.0, 3.0, 30.0))
    X_val = X_test.astype(np.float32)
    model = GDA(text_weights=T, alphas=alphas).fit(X.astype(np.float32), y, X_val, y_test)
    zs, gda = model._logit_parts(X_val)
    expected = [float(np.mean(np.argmax(zs + a * gda, axis=1) == y_test)) for a in alphas]
    assert model.val_scores_ == expected and len(set(expected)) > 1

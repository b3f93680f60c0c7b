"""KNN over FAISS against brute-force cosine neighbours computed with NumPy."""
import numpy as np
import pytest

from solvers.few_shot.knn import KNN

pytest.importorskip("faiss")


def unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


@pytest.mark.parametrize("weighting", ["exp", "cosine", "uniform"])
def test_votes_equal_brute_force(weighting):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 16)).astype(np.float32)
    y = rng.integers(0, 5, 120)
    Q = rng.standard_normal((40, 16)).astype(np.float32)
    model = KNN(k=7, weighting=weighting, tau=0.1, n_classes=5).fit(X, y)
    sims = unit(Q.astype(np.float64)) @ unit(X.astype(np.float64)).T
    nn = np.argsort(-sims, axis=1)[:, :7]
    top = np.take_along_axis(sims, nn, axis=1)
    w = {"exp": np.exp(top / 0.1), "cosine": top, "uniform": np.ones_like(top)}[weighting]
    expected = np.zeros((40, 5))
    for i in range(40):
        for j in range(7):
            expected[i, y[nn[i, j]]] += w[i, j]
    _, idx = model.kneighbors(Q)
    assert np.array_equal(idx, nn)
    np.testing.assert_allclose(model.votes(Q), expected, rtol=1e-5, atol=1e-5)
    positive = np.maximum(expected, 0)
    shares = positive / positive.sum(1, keepdims=True)
    assert np.array_equal(model.predict(Q), shares.argmax(1))
    np.testing.assert_allclose(model.predict_proba(Q), shares, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weighting", ["exp", "cosine", "uniform"])
def test_logits_are_clipped_log_vote_shares(weighting):
    """One contract for every solver: softmax(decision_function) is the solver's probability;
    for kNN that is the vote share, computed here by hand from brute-force neighbours."""
    from solvers.ensembles.ensemble import Ensemble
    from solvers._base.softmax import softmax

    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 8)).astype(np.float32)
    y = rng.integers(0, 4, 60)
    Q = rng.standard_normal((25, 8)).astype(np.float32)
    model = KNN(k=5, weighting=weighting, tau=0.1, n_classes=4).fit(X, y)
    sims = unit(Q.astype(np.float64)) @ unit(X.astype(np.float64)).T
    nn = np.argsort(-sims, axis=1)[:, :5]
    top = np.take_along_axis(sims, nn, axis=1)
    w = {"exp": np.exp(top / 0.1), "cosine": np.maximum(top, 0), "uniform": np.ones_like(top)}[weighting]
    shares = np.zeros((25, 4))
    for i in range(25):
        np.add.at(shares[i], y[nn[i]], w[i])
    shares /= shares.sum(1, keepdims=True)
    logits = model.decision_function(Q)
    np.testing.assert_allclose(logits, np.log(np.maximum(shares, 1e-12)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(softmax(logits), shares, atol=1e-6)
    # an ensemble of kNN alone (probability average) gives kNN's own probabilities
    alone = Ensemble(members=[model], weights=[1.0]).fit()
    np.testing.assert_allclose(alone.predict_proba(Q), shares, atol=1e-6)


def test_k_larger_than_the_pool_uses_every_row_and_warns():
    from solvers._base.fit_warnings import SolverWarning

    X = np.eye(3, dtype=np.float32)
    with pytest.warns(SolverWarning, match="same votes"):
        model = KNN(k=10, weighting="uniform").fit(X, np.array([0, 1, 1]))
    np.testing.assert_allclose(model.votes(X), [[1, 2]] * 3)
    np.testing.assert_allclose(model.predict_proba(X), [[1 / 3, 2 / 3]] * 3, atol=1e-12)
    assert len(model.fit_warnings_) == 1 and "most frequent class" in model.fit_warnings_[0]
    with pytest.warns(SolverWarning, match="every row votes"):
        assert KNN(k=10, weighting="exp").fit(X, np.array([0, 1, 1])).fit_warnings_
    assert KNN(k=2, weighting="uniform").fit(X, np.array([0, 1, 1])).fit_warnings_ == []

"""KNN over FAISS against brute-force cosine neighbours computed with NumPy."""
import numpy as np
import pytest

from solvers.knn import KNN

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
    np.testing.assert_allclose(model.decision_function(Q), expected, rtol=1e-5, atol=1e-5)
    assert np.array_equal(model.predict(Q), expected.argmax(1))
    if weighting != "cosine":
        np.testing.assert_allclose(model.predict_proba(Q), expected / expected.sum(1, keepdims=True), rtol=1e-5)


def test_k_larger_than_the_pool_uses_every_row():
    X = np.eye(3, dtype=np.float32)
    model = KNN(k=10, weighting="uniform").fit(X, np.array([0, 1, 1]))
    np.testing.assert_allclose(model.decision_function(X), [[1, 2]] * 3)

"""KNN over FAISS against brute-force cosine neighbours computed with NumPy."""
import json
import warnings

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
    w = {"exp": np.exp(top / 0.1), "cosine": np.maximum(top, 0), "uniform": np.ones_like(top)}[weighting]
    expected = np.zeros((40, 5))
    for i in range(40):
        for j in range(7):
            expected[i, y[nn[i, j]]] += w[i, j]
    _, idx = model.kneighbors(Q)
    assert np.array_equal(idx, nn)
    np.testing.assert_allclose(model.votes(Q), expected, rtol=1e-5, atol=1e-5)
    shares = expected / expected.sum(1, keepdims=True)
    assert np.array_equal(model.predict(Q), shares.argmax(1))
    np.testing.assert_allclose(model.predict_proba(Q), shares, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weighting", ["exp", "cosine", "uniform"])
def test_logits_are_clipped_log_vote_shares(weighting):
    """One contract for every solver: softmax(decision_function) is the solver's probability;
    for kNN that is the vote share, computed here by hand from brute-force neighbours."""
    from solvers import softmax
    from solvers.ensembles.ensemble import Ensemble

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
    from solvers import SolverWarning

    X = np.eye(3, dtype=np.float32)
    with pytest.warns(SolverWarning, match="same votes"):
        model = KNN(k=10, weighting="uniform").fit(X, np.array([0, 1, 1]))
    np.testing.assert_allclose(model.votes(X), [[1, 2]] * 3)
    np.testing.assert_allclose(model.predict_proba(X), [[1 / 3, 2 / 3]] * 3, atol=1e-12)
    assert len(model.fit_warnings_) == 1 and "most frequent class" in model.fit_warnings_[0]
    with pytest.warns(SolverWarning, match="every row votes"):
        assert KNN(k=10, weighting="exp").fit(X, np.array([0, 1, 1])).fit_warnings_
    assert KNN(k=2, weighting="uniform").fit(X, np.array([0, 1, 1])).fit_warnings_ == []


def brute_force_knn(Q, X, y, n_classes, k, weighting, tau):
    """Neighbours, votes and vote shares re-derived one neighbour at a time in float64: a neighbour
    votes exp(s / tau), max(s, 0) or 1; a query whose votes sum to 0 gets uniform shares."""
    sims = unit(np.asarray(Q, dtype=np.float64)) @ unit(np.asarray(X, dtype=np.float64)).T
    nn = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    votes = np.zeros((len(Q), n_classes))
    for i in range(len(Q)):
        for j in nn[i]:
            s = sims[i, j]
            votes[i, y[j]] += {"exp": np.exp(s / tau), "cosine": max(s, 0.0), "uniform": 1.0}[weighting]
    shares = np.full_like(votes, 1.0 / n_classes)
    for i in range(len(Q)):
        if votes[i].sum() > 0:
            shares[i] = votes[i] / votes[i].sum()
    return sims, nn, votes, shares


def test_a_negative_neighbour_votes_zero_not_its_class_total():
    """The hand case: class 0 at +0.3 and -0.5, class 1 at +0.1. Clipping each neighbour gives
    class 0 with p = 0.3 / 0.4 = 0.75; clipping each class's total (-0.2 -> 0) would give class 1, p = 1."""
    X = np.array([[0.3, np.sqrt(1 - 0.09)], [-0.5, np.sqrt(0.75)], [0.1, np.sqrt(0.99)]])
    model = KNN(k=3, weighting="cosine").fit(X, np.array([0, 0, 1]))
    q = np.array([[1.0, 0.0]])
    sims, _ = model.kneighbors(q)
    np.testing.assert_allclose(np.sort(sims[0]), [-0.5, 0.1, 0.3], atol=1e-6)
    np.testing.assert_allclose(model.votes(q), [[0.3, 0.1]], atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(q), [[0.75, 0.25]], atol=1e-6)
    assert model.predict(q).tolist() == [0]
    assert model.fit_warnings_ == []


@pytest.mark.parametrize("weighting", ["exp", "cosine", "uniform"])
@pytest.mark.parametrize("k", [8, 16])
def test_negative_similarities_equal_brute_force(weighting, k):
    """Training rows around +e1, queries anywhere in three dimensions: a quarter (k = 8) to most
    (k = 16) of the queries have neighbours on both sides of 0, and clipping each class's total
    instead of each neighbour would change some cosine predictions."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((24, 3)) + [1.5, 0, 0]
    y = rng.integers(0, 4, 24)
    Q = rng.standard_normal((200, 3))
    sims, nn, votes, shares = brute_force_knn(Q, X, y, 4, k, weighting, 0.5)
    ranked = -np.sort(-sims, axis=1)
    assert (ranked[:, k - 1] - ranked[:, k] > 1e-5).all()  # no tie at the k-th neighbour: nn is unique
    top = np.take_along_axis(sims, nn, axis=1)
    assert ((top < 0).any(axis=1) & (top > 0).any(axis=1)).mean() > 0.2
    class_totals = np.zeros((200, 4))
    for i in range(200):
        np.add.at(class_totals[i], y[nn[i]], top[i])
    assert (np.maximum(class_totals, 0).argmax(1) != np.maximum(votes, 0).argmax(1)).sum() > (5 if k == 8 else 30) \
        or weighting != "cosine"
    model = KNN(k=k, weighting=weighting, tau=0.5, n_classes=4).fit(X.astype(np.float32), y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, idx = model.kneighbors(Q)
        assert np.array_equal(np.sort(idx, axis=1), np.sort(nn, axis=1))
        np.testing.assert_allclose(model.votes(Q), votes, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(model.predict_proba(Q), shares, rtol=1e-5, atol=1e-6)
        assert np.array_equal(model.predict(Q), shares.argmax(1))
    without = int((votes.sum(1) == 0).sum())
    assert [str(w.message) for w in caught if "no positive vote" in str(w.message)] == (
        [f"KNN: {without} of 200 queries got no positive vote (every neighbour's cosine similarity is <= 0): their "
         "vote shares are uniform and predict gives them the first class, 0; use weighting='exp' or a larger k"] * 2
        if without else [])


@pytest.mark.parametrize("weighting", ["exp", "cosine", "uniform"])
def test_ties_equal_brute_force_and_go_to_the_first_class(weighting):
    """Duplicate rows with different labels (tied similarities), a query at 0 to every row, and
    tied class votes; every row votes (k = n), so the order of tied neighbours cannot matter."""
    X = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 1, 0]], dtype=np.float32)
    y = np.array([0, 1, 2, 2, 0, 1])
    Q = np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, 0, 1], [-1, -1, 0], [1, -1, 0]], dtype=np.float32)
    _, _, votes, shares = brute_force_knn(Q, X, y, 3, 6, weighting, 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = KNN(k=6, weighting=weighting, tau=0.25).fit(X, y)
        np.testing.assert_allclose(model.votes(Q), votes, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(model.predict_proba(Q), shares, rtol=1e-6, atol=1e-7)
        predicted = model.predict(Q)
    assert np.array_equal(predicted, shares.argmax(1))
    if weighting == "cosine":  # by hand: e1 ties classes 0 and 1, e2 ties 1 and 2, (-1, -1, 0) ties 0 and 2
        np.testing.assert_allclose(shares[:3], [[0.5, 0.5, 0], [0, 0.5, 0.5], [0, 0, 1]], atol=1e-7)
        np.testing.assert_allclose(shares[3], [1 / 3] * 3)  # e3 is orthogonal to every row: no vote
        np.testing.assert_allclose(shares[4], [0.5, 0, 0.5], atol=1e-7)
        assert predicted.tolist() == [0, 1, 2, 0, 0, 0]
        assert model.fit_warnings_ == [
            "1 of 6 queries got no positive vote (every neighbour's cosine similarity is <= 0): their vote shares "
            "are uniform and predict gives them the first class, 0; use weighting='exp' or a larger k"]
    elif weighting == "uniform":  # two rows per class: every query ties all three classes
        np.testing.assert_allclose(shares, np.full((6, 3), 1 / 3))
        assert predicted.tolist() == [0] * 6 and len(model.fit_warnings_) == 1
    else:
        assert model.fit_warnings_ == []


def test_every_neighbour_negative_gives_uniform_shares_and_says_so():
    from solvers import SolverWarning

    X = np.array([[1.0, 0.2], [0.2, 1.0], [1.0, 1.0]])
    names = np.array(["cat", "dog", "dog"])
    Q = np.array([[-1.0, -0.5], [1.0, 0.1]])
    model = KNN(k=2, weighting="cosine").fit(X, names)
    with pytest.warns(SolverWarning, match="1 of 2 queries got no positive vote") as record:
        proba = model.predict_proba(Q)
    assert "the first class, cat" in str(record[0].message)
    np.testing.assert_allclose(proba[0], [0.5, 0.5])
    assert proba[1, 0] > 0.5
    with pytest.warns(SolverWarning, match="no positive vote"):
        assert model.predict(Q).tolist() == ["cat", "cat"]
    assert len(model.fit_warnings_) == 1  # said once in fit_warnings_, warned on every call
    # exp weights stay positive: the nearest (least negative) row's class wins, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exp = KNN(k=2, weighting="exp").fit(X, names)
        assert exp.predict(Q[:1]).tolist() == ["dog"]
        assert exp.fit_warnings_ == []
    # ... unless they underflow (s / tau = -1000 for s = -1): said too
    tiny = KNN(k=3, weighting="exp", tau=1e-3).fit(X, names)
    with pytest.warns(SolverWarning, match="underflows to 0.*use a larger tau"):
        np.testing.assert_allclose(tiny.predict_proba(-X[2:]), [[0.5, 0.5]])


def test_fs_solve_reports_queries_without_votes_in_its_json(tmp_path, capsys):
    from tests.cli_runner import run
    from tests.store_fixtures import make_feature_store

    rng = np.random.default_rng(0)
    X = np.abs(rng.standard_normal((12, 4))).astype(np.float32) + 0.1
    y = np.repeat([0, 1], 6)
    X_test = np.vstack([-X[:3], X[6:8]])
    path = make_feature_store(tmp_path / "s.h5", {"train": X, "test": X_test},
                              labels={"train": y, "test": np.array([0, 0, 0, 1, 1])})
    code, out, err = run(["solve", "knn", "--store", path, "--train", "train", "--test", "test",
                          "--param", "k=3", "--param", "weighting=\"cosine\"", "--json", "-q"], capsys)
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert any("3 of 5 queries got no positive vote" in w for w in runs[0]["warnings"])
    assert "no positive vote" in err


def test_defaults_are_16_neighbours_with_exp_votes_at_tau_0_07():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 6))
    y = rng.integers(0, 3, 40)
    Q = rng.standard_normal((30, 6))
    _, _, votes, shares = brute_force_knn(Q, X, y, 3, 16, "exp", 0.07)
    model = KNN().fit(X, y)
    np.testing.assert_allclose(model.votes(Q), votes, rtol=1e-4)
    np.testing.assert_allclose(model.predict_proba(Q), shares, rtol=1e-4, atol=1e-9)
    one = KNN(k=1).fit(X, y)  # the nearest row's class, probability 1
    _, nn, _, _ = brute_force_knn(Q, X, y, 3, 1, "exp", 0.07)
    assert one.predict(Q).tolist() == y[nn[:, 0]].tolist()


def test_parameters_classes_and_widths_are_checked():
    from solvers.errors import InputError

    rng = np.random.default_rng(6)
    X = rng.standard_normal((12, 4))
    y = np.arange(12) % 3
    names = np.array(["a", "b", "c"])
    with pytest.raises(InputError, match="k must be >= 1, got 0"):
        KNN(k=0).fit(X, y)
    with pytest.raises(InputError, match=r"weighting must be one of \('exp', 'cosine', 'uniform'\), got 'linear'"):
        KNN(weighting="linear").fit(X, y)
    with pytest.raises(ValueError, match="4"):
        KNN(text_weights=np.eye(3, 5)).fit(X, y)
    with pytest.raises(ValueError, match="label"):
        KNN(text_weights=np.eye(2, 4)).fit(X, y)
    model = KNN(k=3, classes=names).fit(X, names[y])
    assert model.classes_.tolist() == names.tolist()
    assert model.predict(X).tolist() == names[KNN(k=3).fit(X, y).predict(X)].tolist()
    with pytest.raises(ValueError, match="4 features"):
        model.predict(X[:, :3])
    wide = KNN(k=3, n_classes=5).fit(X, y)  # classes 3 and 4 have no rows: no votes
    assert wide.classes_.tolist() == list(range(5))
    assert (wide.votes(X)[:, 3:] == 0).all()


def test_warnings_at_k_equal_to_and_above_the_training_rows():
    from solvers import SolverWarning

    X = np.eye(4)
    y = np.array([0, 1, 1, 0])
    with pytest.warns(SolverWarning, match="k = 4 >= the 4 training rows"):
        KNN(k=4, weighting="uniform").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert KNN(k=4, weighting="exp").fit(X, y).fit_warnings_ == []
        assert KNN(k=3, weighting="uniform").fit(X, y).fit_warnings_ == []
    with pytest.warns(SolverWarning, match="k = 5 exceeds the 4 training rows"):
        KNN(k=5, weighting="cosine").fit(X, y)


def test_vote_shares_are_uniform_without_votes_and_classes_keep_their_order():
    X = np.array([[1.0, 0.2], [0.2, 1.0], [1.0, 1.0]])
    names = np.array(["dog", "cat", "cat"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shares = KNN(k=2, weighting="cosine").fit(X, names).vote_shares(-X)
    np.testing.assert_allclose(shares, np.full((3, 2), 0.5))
    ordered = KNN(k=1, classes=["dog", "cat"]).fit(X, names)  # the list's order, not the sorted one
    assert ordered.classes_.tolist() == ["dog", "cat"]
    np.testing.assert_allclose(ordered.predict_proba(X[:1]), [[1.0, 0.0]], atol=1e-12)


def test_an_ivf_index_is_trained_and_missing_neighbours_do_not_vote():
    """IVF with 2 lists, 1 probed: each query sees one list, so with k = 60 of 100 rows many
    neighbour slots come back empty (index -1); only the rows found vote."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((100, 4)).astype(np.float32)
    y = np.arange(100) % 3
    model = KNN(k=60, weighting="uniform", index_factory="IVF2,Flat").fit(X, y)
    assert model.index_.is_trained
    sims, idx = model.kneighbors(X)
    assert (idx == -1).any()
    expected = np.zeros((100, 3))
    for i in range(100):
        np.add.at(expected[i], y[idx[i][idx[i] >= 0]], 1.0)
    np.testing.assert_array_equal(model.votes(X), expected)
    assert KNN(k=1, index_factory="IVF2,Flat").fit(X, y).predict(X).tolist() == y.tolist()  # each row finds itself

"""Class-incremental GDA: partial_fit over sessions equals fit on the union (1e-8), with and
without text weights, across save/load; the FSCIL protocol on a synthetic 60 + 8 x 5-way 5-shot
split against a hand-run loop of union fits."""
import numpy as np
import pytest

from solvers.errors import InputError
from solvers.few_shot.class_incremental import fscil_table
from solvers.few_shot.gda import GDA
from solvers.persistence import load_npz, save_npz


def sessions_data(seed=0, C=12, D=10, per=8):
    rng = np.random.default_rng(seed)
    centres = 2 * rng.standard_normal((C, D))
    y = np.repeat(np.arange(C), per)
    X = centres[y] + rng.standard_normal((y.size, D))
    return X, y, centres


@pytest.mark.parametrize("with_text", [False, True])
def test_partial_fit_equals_union_fit(with_text, tmp_path):
    X, y, centres = sessions_data()
    T = centres + 0.5 if with_text else None
    parts = [y < 6, (y >= 6) & (y < 9), y >= 9]
    model = GDA(text_weights=T, alpha=1.0)
    for i, part in enumerate(parts):
        if i == 2:  # a saved model takes the next session
            save_npz(model, tmp_path / "g")
            model = load_npz(tmp_path / "g")
        model.partial_fit(X[part], y[part])
    union = GDA(text_weights=T, alpha=1.0).fit(X, y)
    for name in ("means_", "precision_", "coef_", "intercept_"):
        np.testing.assert_allclose(getattr(model, name), getattr(union, name), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(model.decision_function(X), union.decision_function(X), rtol=1e-8, atol=1e-8)


def test_partial_fit_adds_rows_of_seen_classes_and_uses_seen_text_rows():
    X, y, centres = sessions_data(1)
    model = GDA(text_weights=centres, alpha=1.0).partial_fit(X[y < 4], y[y < 4])
    assert model.decision_function(X).shape == (len(y), 4)
    first, second = np.flatnonzero(y < 4)[::2], np.flatnonzero(y < 4)[1::2]
    split = GDA(alpha=1.0).partial_fit(X[first], y[first]).partial_fit(X[second], y[second])
    whole = GDA(alpha=1.0).fit(X[y < 4], y[y < 4])
    np.testing.assert_allclose(split.coef_, whole.coef_, rtol=1e-8, atol=1e-8)


def test_partial_fit_refuses_a_gap_and_row_based_covariances():
    X, y, _ = sessions_data(2)
    with pytest.raises(InputError, match="class"):
        GDA().partial_fit(X[y == 3], y[y == 3])
    with pytest.raises(InputError, match="partial_fit"):
        GDA(covariance="oas").partial_fit(X, y)


def test_fscil_table_on_60_plus_8_sessions_of_5_way_5_shot():
    rng = np.random.default_rng(3)
    C, D = 100, 24
    centres = 1.2 * rng.standard_normal((C, D))
    y_train = np.repeat(np.arange(C), 20)
    X_train = centres[y_train] + rng.standard_normal((y_train.size, D))
    y_test = np.repeat(np.arange(C), 10)
    X_test = centres[y_test] + rng.standard_normal((y_test.size, D))
    classes = rng.permutation(C)
    sessions = [classes[:60]] + [classes[60 + 5 * i: 65 + 5 * i] for i in range(8)]
    table = fscil_table(lambda order: GDA(alpha=1.0), X_train, y_train, X_test, y_test, sessions, shots=5, seed=1)
    assert [r["classes"] for r in table["sessions"]] == [60 + 5 * i for i in range(9)]
    assert [r["new_rows"] for r in table["sessions"]] == [1200] + [25] * 8
    # Oracle: after each session, a GDA fitted from scratch on every row given so far.
    from solvers.model_selection.fewshot import fewshot_split

    new = np.empty(C, np.int64)
    new[np.concatenate(sessions)] = np.arange(C)
    ytr, yte = new[y_train], new[y_test]
    given = [np.flatnonzero(ytr < 60)]
    expected = []
    for i in range(9):
        if i:
            rows = np.flatnonzero((ytr >= 55 + 5 * i) & (ytr < 60 + 5 * i))
            given.append(rows[fewshot_split(ytr[rows], 5, 1)])
        rows = np.concatenate(given)
        seen = 60 + 5 * i
        model = GDA(alpha=1.0).fit(X_train[rows], ytr[rows])
        test = yte < seen
        expected.append(np.mean(model.predict(X_test[test]) == yte[test]))
    np.testing.assert_allclose([r["accuracy"] for r in table["sessions"]], expected)
    assert table["average"] == pytest.approx(np.mean(expected))
    assert table["drop"] == pytest.approx(expected[0] - expected[-1])

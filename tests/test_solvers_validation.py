"""Hyper-parameters are chosen from the validation split alone: the test split never reaches fit,
so permuting test labels cannot move a choice, while the validation split does drive it."""
import numpy as np
import pytest

from solvers.gda import GDA
from solvers.linear_probe import LinearProbe
from solvers.tip_adapter import TipAdapter

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def split(seed):
    rng = np.random.default_rng(seed)
    C, D = 5, 12
    centres = rng.standard_normal((C, D))
    T = centres + 1.5 * rng.standard_normal((C, D))

    def draw(n):
        y = rng.integers(0, C, n)
        return centres[y] + 1.3 * rng.standard_normal((n, D)), y

    (X, y), (X_val, y_val), (X_test, y_test) = draw(40), draw(120), draw(200)
    y = np.arange(40) % C
    X = centres[y] + 1.3 * rng.standard_normal((40, D))
    return T, X, y, X_val, y_val, X_test, y_test


def chosen(model):
    return tuple(getattr(model, a, None) for a in ("alpha_", "beta_", "C_"))


FACTORIES = [
    lambda T: GDA(text_weights=T),
    lambda T: TipAdapter(text_weights=T, search_steps=(10, 5)),
    lambda T: LinearProbe(max_iter=100),
]


@pytest.mark.parametrize("make", FACTORIES)
def test_test_labels_cannot_change_the_choice(make):
    T, X, y, X_val, y_val, X_test, y_test = split(0)
    first = make(T).fit(X, y, X_val, y_val)
    acc_before = first.score(X_test, y_test)
    permuted = np.random.default_rng(1).permutation(y_test)
    second = make(T).fit(X, y, X_val, y_val)
    second.score(X_test, permuted)
    assert chosen(first) == chosen(second)
    assert np.array_equal(first.decision_function(X_test), second.decision_function(X_test))
    assert first.score(X_test, y_test) == acc_before


@pytest.mark.parametrize("make", FACTORIES)
def test_the_choice_is_a_function_of_the_validation_split_only(make):
    T, X, y, X_val, y_val, X_test, y_test = split(2)
    base = make(T).fit(X, y, X_val, y_val)
    shuffled_rows = np.random.default_rng(3).permutation(y_val.size)
    same = make(T).fit(X, y, X_val[shuffled_rows], y_val[shuffled_rows])
    assert chosen(base) == chosen(same)
    noisy = [chosen(make(T).fit(X, y, X_val, np.random.default_rng(s).permutation(y_val))) for s in range(6)]
    assert any(c != chosen(base) for c in noisy)

"""Input checks: each user mistake is a ValueError naming the problem."""
import numpy as np
import pytest

from solvers.few_shot.gda import GDA
from solvers.few_shot.tip_adapter import TipAdapter
from solvers.zero_shot.zero_shot import ZeroShot


@pytest.fixture
def T():
    return np.random.default_rng(0).standard_normal((3, 768))


def test_dimension_mismatch_is_named(T):
    X = np.ones((6, 512))
    with pytest.raises(ValueError, match="X has 512 features but text_weights has 768"):
        GDA(text_weights=T).fit(X, np.arange(6) % 3)
    model = ZeroShot(text_weights=T).fit()
    with pytest.raises(ValueError, match="X has 512 features, but ZeroShot is expecting 768 features as input"):
        model.predict(X)


def test_float16_is_upcast(T):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((9, 768)).astype(np.float16)
    model = TipAdapter(text_weights=T).fit(X, np.arange(9) % 3)
    assert model.keys_.dtype == np.float32
    assert model.decision_function(X).dtype == np.float32


@pytest.mark.parametrize("X, message", [
    (np.ones((2, 3, 4)), "2-D"),
    (np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 1.0]]), "NaN or infinite"),
    (np.array([["a", "b"]] * 3), "numeric"),
])
def test_bad_features(X, message):
    with pytest.raises(ValueError, match=message):
        GDA().fit(X, np.arange(len(X)) % 2)


def test_bad_labels(T):
    X = np.random.default_rng(2).standard_normal((6, 768))
    # with a text bank of 3 rows the classes are range(3) (or the ``classes`` given): labels must be among them
    with pytest.raises(ValueError, match=r"label\(s\) 5 not among the 3 classes \(0, 1, 2\)"):
        GDA(text_weights=T).fit(X, np.array([0, 1, 2, 0, 1, 5]))
    with pytest.raises(ValueError, match=r"label\(s\) -1 not among the 3 classes"):
        GDA(text_weights=T).fit(X, np.array([0, 1, 2, 0, 1, -1]))
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        GDA(text_weights=T).fit(X, np.array([0, 1, 2, 0, 1, 1.5]))
    with pytest.raises(ValueError, match=r"label\(s\) 'd' not among the 3 classes \('a', 'b', 'c'\)"):
        GDA(text_weights=T, classes=["a", "b", "c"]).fit(X, np.array(list("abcabd")))
    with pytest.raises(ValueError, match="has 5 labels but X has 6 rows"):
        GDA(text_weights=T).fit(X, np.arange(5) % 3)


def test_missing_class_is_named(T):
    X = np.random.default_rng(3).standard_normal((4, 768))
    with pytest.raises(ValueError, match="fewer than 1 training sample.*class 2"):
        GDA(text_weights=T).fit(X, np.array([0, 1, 0, 1]))


def test_validation_pair_must_be_complete(T):
    X = np.random.default_rng(4).standard_normal((6, 768))
    with pytest.raises(ValueError, match="both X_val and y_val"):
        GDA(text_weights=T).fit(X, np.arange(6) % 3, X_val=X)


def test_bad_option_names_the_choices():
    with pytest.raises(ValueError, match="covariance must be one of"):
        GDA(covariance="shrunk").fit(np.eye(4), np.arange(4) % 2)

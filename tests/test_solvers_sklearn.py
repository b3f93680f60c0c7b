"""The solvers behave as scikit-learn estimators: clone, GridSearchCV, cross_val_score, Pipeline."""
import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from solvers.gda import GDA
from solvers.knn import KNN
from solvers.linear_probe import LinearProbe
from solvers.tip_adapter import TipAdapter
from solvers.unsupervised_gda import UnsupervisedGDA
from solvers.zeroshot import ZeroShot


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 10))
    y = np.arange(48) % 4
    return centres[y] + rng.standard_normal((48, 10)), y, centres


ALL = [ZeroShot, GDA, LinearProbe, TipAdapter, KNN, UnsupervisedGDA]


@pytest.mark.parametrize("cls", ALL)
def test_clone_keeps_constructor_args(cls, data):
    _, _, T = data
    model = cls(text_weights=T, temperature=2.0)
    copy = clone(model)
    assert copy is not model and copy.temperature == 2.0
    assert np.array_equal(copy.get_params()["text_weights"], T)
    assert is_classifier(model)


def test_grid_search_over_gda_alpha(data):
    X, y, T = data
    search = GridSearchCV(GDA(text_weights=T), {"alpha": [0.01, 1.0, 100.0]}, cv=3).fit(X, y)
    assert search.best_params_["alpha"] in (0.01, 1.0, 100.0)
    assert search.predict(X).shape == (48,)


def test_grid_search_over_tip_adapter_beta(data):
    X, y, T = data
    search = GridSearchCV(TipAdapter(text_weights=T, alpha=1.0), {"beta": [0.5, 5.0]}, cv=3).fit(X, y)
    assert search.best_params_["beta"] in (0.5, 5.0)


def test_cross_val_score_and_pipeline(data):
    X, y, T = data
    scores = cross_val_score(TipAdapter(text_weights=T, alpha=1.0, beta=1.0), X, y, cv=3)
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    pipe = make_pipeline(FunctionTransformer(lambda A: 2 * A), GDA()).fit(X, y)
    assert np.array_equal(pipe.predict(X), GDA().fit(X, y).predict(X))


def test_predict_proba_is_softmax_of_logits_over_temperature(data):
    X, y, T = data
    model = GDA(text_weights=T, temperature=50.0).fit(X, y)
    z = model.decision_function(X) / 50.0
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(X), p / p.sum(1, keepdims=True), rtol=1e-10)
    assert model.score(X, y) == np.mean(model.decision_function(X).argmax(1) == y)
    assert np.array_equal(model.classes_, np.arange(4)) and model.n_features_in_ == 10


def test_zero_shot_needs_no_labels(data):
    X, _, T = data
    model = ZeroShot(text_weights=T).fit()
    Tn = T / np.linalg.norm(T, axis=1, keepdims=True)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    np.testing.assert_allclose(model.decision_function(X), 100 * Xn @ Tn.T, rtol=1e-12)


def test_importing_a_solver_does_not_import_sklearn():
    import subprocess
    import sys

    code = ("import sys\nimport solvers.gda, solvers.tip_adapter, solvers.zeroshot\n"
            "print('sklearn' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_set_params_refuses_unknown_names(data):
    with pytest.raises(ValueError, match="invalid parameter 'nope' for GDA"):
        GDA().set_params(nope=1)
    assert GDA().set_params(alpha=3.0).alpha == 3.0

"""The solvers behave as scikit-learn estimators: clone, GridSearchCV, cross_val_score, Pipeline."""
import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from solvers.few_shot.gda import GDA
from solvers.few_shot.knn import KNN
from solvers.few_shot.linear_probe import LinearProbe
from solvers.few_shot.tip_adapter import TipAdapter
from solvers.unlabelled.unsupervised_gda import UnsupervisedGDA
from solvers.zero_shot.zero_shot import ZeroShot


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


def test_grid_search_over_gda_alpha_finds_the_known_best(data):
    """Text weights of the wrong classes: only a large alpha lets the GDA term overrule them, so
    alpha = 100 wins every fold (checked against a brute-force cross-validation here)."""
    from sklearn.model_selection import StratifiedKFold

    X, y, T = data
    wrong = np.roll(T, 1, axis=0)
    grid = [0.01, 1.0, 100.0]
    search = GridSearchCV(GDA(text_weights=wrong), {"alpha": grid}, cv=3).fit(X, y)
    folds = list(StratifiedKFold(3).split(X, y))
    brute = [np.mean([GDA(text_weights=wrong, alpha=a).fit(X[tr], y[tr]).score(X[te], y[te]) for tr, te in folds])
             for a in grid]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], brute)
    assert brute[2] > max(brute[:2])
    assert search.best_params_["alpha"] == 100.0
    assert search.predict(X).shape == (48,)


def test_grid_search_over_tip_adapter_beta_finds_the_known_best():
    """Without the zero-shot term (logit_scale=0) and with three times as many keys of class 0, a
    broad kernel (beta = 0.5) lets the key count decide, while a sharp one (beta = 50) follows the
    nearest keys of two well-separated clusters: beta = 50 must win."""
    rng = np.random.default_rng(1)
    centres = 2 * np.eye(2, 10)
    y = np.r_[np.zeros(36, int), np.ones(12, int)]
    X = centres[y] + 0.3 * rng.standard_normal((48, 10))
    model = TipAdapter(text_weights=np.ones((2, 10)), logit_scale=0.0, alpha=1.0)
    search = GridSearchCV(model, {"beta": [0.5, 50.0]}, cv=3).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > scores[0] and scores[1] == 1.0
    assert search.best_params_["beta"] == 50.0


def test_cross_val_score_and_pipeline(data):
    X, y, T = data
    from sklearn.model_selection import StratifiedKFold

    scores = cross_val_score(TipAdapter(text_weights=T, alpha=1.0, beta=1.0), X, y, cv=3)
    brute = [np.mean(TipAdapter(text_weights=T, alpha=1.0, beta=1.0).fit(X[tr], y[tr]).predict(X[te]) == y[te])
             for tr, te in StratifiedKFold(3).split(X, y)]
    np.testing.assert_allclose(scores, brute)
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

    code = ("import sys\nimport solvers.few_shot.gda, solvers.few_shot.tip_adapter, solvers.zero_shot.zero_shot\n"
            "print('sklearn' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_set_params_refuses_unknown_names(data):
    with pytest.raises(ValueError, match="invalid parameter 'nope' for GDA"):
        GDA().set_params(nope=1)
    assert GDA().set_params(alpha=3.0).alpha == 3.0

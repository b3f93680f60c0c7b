"""Persistence round trips (npz, a fake store, the real FeatureStore), registry, provenance."""
import numpy as np
import pytest

from solvers.few_shot.gda import GDA
from solvers.few_shot.knn import KNN
from solvers.few_shot.linear_probe import LinearProbe
from solvers.few_shot.tip_adapter import TipAdapter
from solvers.persistence import load_from_store, load_npz, save_npz, save_to_store
from solvers.registry import SOLVERS, describe
from solvers.unlabelled.unsupervised_gda import UnsupervisedGDA
from solvers.zero_shot.zero_shot import ZeroShot
from workflows.inputs.solver_inputs import check_encoder


class FakeStore:
    """Holds models in a dict, copying arrays and JSON-round-tripping meta like a real store."""

    def __init__(self):
        self.models = {}

    def save_model(self, name, arrays, meta):
        import json

        self.models[name] = ({k: np.array(v) for k, v in arrays.items()}, json.loads(json.dumps(meta)))

    def load_model(self, name):
        return self.models[name]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    T = rng.standard_normal((4, 12))
    y = np.arange(40) % 4
    X = (T[y] + rng.standard_normal((40, 12))).astype(np.float32)
    X_val = (T[y] + rng.standard_normal((40, 12))).astype(np.float32)
    return X, y, X_val, T


def fitted(data):
    X, y, X_val, T = data
    models = [ZeroShot(text_weights=T).fit(), GDA(text_weights=T).fit(X, y, X_val, y),
              GDA(covariance="empirical", priors="empirical").fit(X, y),
              LinearProbe(max_iter=50).fit(X, y, X_val, y),
              TipAdapter(text_weights=T, search_steps=(5, 3)).fit(X, y, X_val, y),
              UnsupervisedGDA(text_weights=T, k_per_class=4).fit(X)]
    try:
        import faiss  # noqa: F401

        models.append(KNN(k=5).fit(X, y))
    except ImportError:
        pass
    return models


def test_npz_round_trip(tmp_path, data):
    for i, model in enumerate(fitted(data)):
        npz, meta = save_npz(model, tmp_path / f"m{i}", encoder="ViT-B-32/openai")
        assert npz.exists() and meta.exists()
        loaded = load_npz(tmp_path / f"m{i}.npz")
        assert type(loaded) is type(model) and loaded.encoder_ == "ViT-B-32/openai"
        assert np.array_equal(loaded.decision_function(data[2]), model.decision_function(data[2]))
        assert loaded.get_params().keys() == model.get_params().keys()


def test_fake_store_round_trip(data):
    store = FakeStore()
    for i, model in enumerate(fitted(data)):
        save_to_store(store, f"model-{i}", model, "enc")
        loaded = load_from_store(store, f"model-{i}")
        assert loaded.encoder_ == "enc"
        assert np.array_equal(loaded.decision_function(data[2]), model.decision_function(data[2]))


def test_real_feature_store_round_trip(tmp_path, data):
    store_module = pytest.importorskip("featurestore.store.feature_store")
    X, y, X_val, T = data
    model = GDA(text_weights=T).fit(X, y, X_val, y)
    path = tmp_path / "s.h5"
    with store_module.FeatureStore(path, mode="a") as store:
        save_to_store(store, "gda-16shot", model, "ViT-B-32/openai")
    with store_module.FeatureStore(path) as store:
        loaded = load_from_store(store, "gda-16shot")
    assert loaded.encoder_ == "ViT-B-32/openai"
    assert np.array_equal(loaded.decision_function(X_val), model.decision_function(X_val))


def test_check_encoder_refuses_another_encoder(tmp_path, data):
    errors = pytest.importorskip("featurestore.errors")
    X, y, _, T = data
    save_npz(GDA(text_weights=T).fit(X, y), tmp_path / "g", encoder="ViT-B-32/openai")
    loaded = load_npz(tmp_path / "g")
    check_encoder(loaded, "ViT-B-32/openai")
    with pytest.raises(errors.ProvenanceError, match="ViT-B-32/openai.*not 'ViT-L-14/openai'"):
        check_encoder(loaded, "ViT-L-14/openai")


def test_registry_names_and_description():
    assert set(SOLVERS) >= {"zero-shot", "gda", "linear-probe", "tip-adapter", "knn", "unsupervised-gda",
                            "descriptors", "fudd", "description-selection", "perception-clip"}
    assert SOLVERS["gda"] is GDA
    info = describe()
    assert info["gda"]["params"]["alpha"] is None and info["gda"]["params"]["covariance"] == "ks"
    assert info["tip-adapter"]["params"]["default_beta"] == 1.0
    assert all(entry["doc"] for entry in info.values())


def test_import_solvers_is_cheap():
    import subprocess
    import sys

    code = ("import sys, solvers\n"
            "print(any(m.split('.')[0] in ('sklearn', 'scipy', 'faiss', 'torch') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_state_missing_fitted_arrays_is_refused_clearly():
    from solvers.few_shot.tip_adapter import TipAdapter

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(12, 5)), np.arange(12) % 3
    arrays, params = TipAdapter(text_weights=rng.normal(size=(3, 5)), alpha=1.0, beta=1.0).fit(X, y).get_state()
    del arrays["labels_"]
    with pytest.raises(ValueError, match="lacks labels_"):
        TipAdapter.from_state(arrays, params)

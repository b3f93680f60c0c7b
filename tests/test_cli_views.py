"""fs solve --views-as samples|mean: few-shot training sets from the stored augmented views, as
the official GDA (every view a row) and Tip-Adapter (mean of the views) recipes build them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.images import write_class_tree


@pytest.fixture(scope="module")
def views_store(tmp_path_factory, tiny_encoder):
    from featurestore.extract.pipeline import extract
    from featurestore.sources import open_source

    tmp_path = tmp_path_factory.mktemp("views")
    write_class_tree(tmp_path / "train", {"cat": 3, "dog": 3})
    write_class_tree(tmp_path / "val", {"cat": 2, "dog": 2}, seed=50)
    store = tmp_path / "views.h5"
    extract(open_source(tmp_path / "train"), store, tiny_encoder, views=2, workers=0, quiet=True)
    extract(open_source(tmp_path / "val"), store, tiny_encoder, workers=0, quiet=True)
    weights = tiny_encoder.encode_texts(["a photo of a cat.", "a photo of a dog."])
    with FeatureStore(store, mode="a") as writer:
        writer.put_text_bank(tiny_encoder.key, "train/simple", weights, ["cat", "dog"], kind="classes",
                             classes=["cat", "dog"])
    with FeatureStore(store) as reader:
        arrays = {"X": reader.features(tiny_encoder.key, "train"), "views": reader.views(tiny_encoder.key, "train"),
                  "y": reader.labels("train"), "Xv": reader.features(tiny_encoder.key, "val"),
                  "yv": reader.labels("val"), "T": weights}
    return store, tiny_encoder.key, arrays


def unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def test_views_as_mean_is_the_tip_adapter_cache(views_store, capsys):
    from solvers import TipAdapter
    from solvers.persistence import load_from_store

    store, key, a = views_store
    code, out, err = run(["solve", "tip-adapter", "--store", store, "--encoder", key, "--train", "train",
                          "--val", "val", "--views-as", "mean", "--save", "tip-views", "--json", "-q"], capsys)
    assert code == 0, err
    mean = unit(a["views"].astype(np.float64).mean(axis=1))  # the two views only, no centre crop
    direct = TipAdapter(text_weights=a["T"]).fit(mean, a["y"], X_val=a["Xv"], y_val=a["yv"])
    summary = json.loads(out)
    chosen = summary["runs"][0]["chosen"]
    assert summary["views_as"] == "mean"
    assert (chosen["alpha_"], chosen["beta_"]) == pytest.approx((direct.alpha_, direct.beta_))
    with FeatureStore(store) as reader:
        keys = load_from_store(reader, "tip-views").keys_
    np.testing.assert_allclose(np.sort(keys, axis=0), np.sort(mean, axis=0), atol=1e-6)
    assert np.abs(mean - unit(a["X"])).max() > 1e-3  # the views really changed the cache
    code, _, err = run(["solve", "tip-adapter", "--store", store, "--encoder", key, "--train", "train",
                        "--val", "val", "--test", "val"], capsys)
    assert code == 2 and "same split" in err


def test_views_as_samples_fits_gda_on_every_view(views_store, capsys):
    from solvers import GDA
    from solvers.persistence import load_from_store

    store, key, a = views_store
    code, out, err = run(["solve", "gda", "--store", store, "--encoder", key, "--train", "train",
                          "--views-as", "samples", "--param", "alpha=1.0", "--save", "gda-views", "--json", "-q"],
                         capsys)
    assert code == 0, err
    n, v, d = a["views"].shape
    direct = GDA(text_weights=a["T"], alpha=1.0).fit(a["views"].reshape(n * v, d), np.repeat(a["y"], v))
    with FeatureStore(store) as reader:
        saved = load_from_store(reader, "gda-views")
    np.testing.assert_allclose(saved.precision_, direct.precision_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(saved.means_, direct.means_, rtol=1e-5, atol=1e-6)
    centre_crop = GDA(text_weights=a["T"], alpha=1.0).fit(a["X"], a["y"])
    assert np.abs(saved.precision_ - centre_crop.precision_).max() > 1e-3

"""fs solve --average-views: training features averaged with their stored augmented views."""
from __future__ import annotations

import json

import numpy as np
import pytest

from featurestore.store import FeatureStore
from tests.cli_runner import run
from tests.images import write_class_tree


def test_average_views_feeds_solvers_the_mean_over_augmented_views(tmp_path, tiny_encoder, capsys):
    from featurestore.extract import extract
    from featurestore.sources import open_source
    from solvers import TipAdapter

    write_class_tree(tmp_path / "train", {"cat": 3, "dog": 3})
    write_class_tree(tmp_path / "val", {"cat": 2, "dog": 2}, seed=50)
    store = tmp_path / "views.h5"
    extract(open_source(tmp_path / "train"), store, tiny_encoder, views=2, workers=0, quiet=True)
    extract(open_source(tmp_path / "val"), store, tiny_encoder, workers=0, quiet=True)
    key = tiny_encoder.key
    weights = tiny_encoder.encode_texts(["a photo of a cat.", "a photo of a dog."])
    with FeatureStore(store, mode="a") as writer:
        writer.put_text_bank(key, "train/simple", weights, ["cat", "dog"], kind="classes", classes=["cat", "dog"])
    code, out, err = run(["solve", "tip-adapter", "--store", store, "--encoder", key, "--train", "train",
                          "--val", "val", "--average-views", "--save", "tip-views", "--json", "-q"], capsys)
    assert code == 0, err
    with FeatureStore(store) as reader:
        X, views, y = reader.features(key, "train"), reader.views(key, "train"), reader.labels("train")
        Xv, yv = reader.features(key, "val"), reader.labels("val")
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    mean = unit((unit(X) + unit(views).sum(axis=1)) / 3)
    direct = TipAdapter(text_weights=weights).fit(mean, y, X_val=Xv, y_val=yv)
    chosen = json.loads(out)["runs"][0]["chosen"]
    assert (chosen["alpha_"], chosen["beta_"]) == pytest.approx((direct.alpha_, direct.beta_))
    from solvers.persistence import load_from_store
    with FeatureStore(store) as reader:
        keys = load_from_store(reader, "tip-views").keys_
    np.testing.assert_allclose(np.sort(keys, axis=0), np.sort(mean, axis=0), atol=1e-6)
    assert np.abs(mean - unit(X)).max() > 1e-3  # the views really changed the cache
    code, _, err = run(["solve", "tip-adapter", "--store", store, "--encoder", key, "--train", "train",
                        "--val", "val", "--test", "val"], capsys)
    assert code == 2 and "same split" in err

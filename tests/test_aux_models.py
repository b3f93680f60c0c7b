"""A saved AMU or label-free model records its auxiliary encoder, so `fs predict` and `fs eval`
build the same [clip | aux] rows it was fitted on and score what `fs solve` reported."""
from __future__ import annotations

import json

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.store_fixtures import make_aux_store, make_feature_store

CLASSES = [f"c{i}" for i in range(6)]
SIZES = {"train": 30, "val": 15, "test": 40, "pool": 60}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A CLIP-like encoder with a class bank and an image-only auxiliary encoder over the same
    splits (a model fitted on [clip | aux] refuses CLIP columns alone: 8 of its 13 features)."""
    path = tmp_path_factory.mktemp("aux") / "s.h5"
    make_aux_store(path, 1, CLASSES, SIZES)
    return str(path)


def _solve(path, method, args, name, capsys):
    code, out, err = run(["solve", method, "--store", path, "--encoder", "test/enc", "--aux-encoder", "test/aux",
                          *args, "--test", "test", "--save", name, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)["runs"][0]["accuracy"]


@pytest.mark.parametrize(("method", "args"), [
    ("amu", ["--train", "train", "--val", "val"]),
    ("label-free", ["--unlabelled", "pool", "--rounds", "2", "--param", "k_per_class=5"]),
])
def test_predict_and_eval_of_a_saved_aux_model_score_what_solve_reported(store, method, args, tmp_path, capsys):
    name = f"{method}-model"
    accuracy = _solve(store, method, args, name, capsys)
    with FeatureStore(store) as reader:
        from solvers.persistence import load_from_store

        assert load_from_store(reader, name).aux_encoder_ == "test/aux"
    rows = tmp_path / "rows.json"
    code, out, err = run(["predict", "--store", store, "--models", name, "--split", "test", "--output", str(rows),
                          "--json"], capsys)
    assert code == 0, err
    predicted = json.loads(out)
    assert predicted["labelled"] == SIZES["test"] and predicted["accuracy"] == pytest.approx(accuracy)
    assert len(json.loads(rows.read_text())) == SIZES["test"]
    code, out, err = run(["eval", "--store", store, "--models", name, "--split", "test", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)[0]["top1"] == pytest.approx(accuracy)


def test_a_missing_aux_encoder_is_named(store, tmp_path, capsys):
    other = tmp_path / "copy.h5"
    make_feature_store(other, {"test": np.zeros((4, 8))}, labels={"test": [0, 1, 2, 3]},
                       classes={"test": CLASSES})
    with FeatureStore(store) as reader, FeatureStore(other, mode="a") as writer:
        arrays, meta = reader.load_model("amu-model")
        writer.save_model("amu-model", arrays, meta)
    code, _, err = run(["predict", "--store", str(other), "--models", "amu-model", "--split", "test"], capsys)
    assert code == 2 and "no encoder 'test/aux'" in err and err.count("\n") == 1

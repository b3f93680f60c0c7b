"""Labels and text weights pair by class name: a text bank whose classes are in another order than
the split's (``--text``) gives the same results as one in the split's order. Before the labels
were mapped onto the bank's class list, weight row k was paired with the split's class k: the
shuffled bank scored 0% zero-shot on well-separated classes."""
import json

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.store_fixtures import make_feature_store

NAMES = ["ant", "bee", "cat"]
ORDER = [2, 0, 1]  # the shuffled bank: cat, ant, bee


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    T = rng.normal(size=(3, 16))

    def rows(n):
        y = np.arange(n) % 3
        return (T[y] + 0.3 * rng.normal(size=(n, 16))).astype(np.float32), y

    (X_train, y_train), (X_val, y_val), (X_test, y_test) = rows(30), rows(30), rows(30)
    path = make_feature_store(tmp_path_factory.mktemp("order") / "s.h5",
                              {"train": X_train, "val": X_val, "test": X_test},
                              labels={"train": y_train, "val": y_val, "test": y_test},
                              classes={split: NAMES for split in ("train", "val", "test")})
    with FeatureStore(path, mode="a") as writer:
        for bank, order in (("straight", [0, 1, 2]), ("shuffled", ORDER)):
            writer.put_text_bank("test/enc", bank, T[order].astype(np.float32),
                                 [f"a photo of a {NAMES[i]}" for i in order], kind="classes",
                                 classes=[NAMES[i] for i in order])
    return str(path)


def solve(args, capsys):
    code, out, err = run(["solve", *args, "--json", "-q"], capsys)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("name", ["zero-shot", "gda", "tip-adapter", "linear-probe"])
def test_a_bank_in_another_class_order_gives_the_same_accuracy(name, store, capsys):
    common = [name, "--store", store, "--train", "train", "--val", "val", "--test", "test"]
    straight = solve([*common, "--bank", "straight"], capsys)["runs"][0]["accuracy"]
    shuffled = solve([*common, "--bank", "shuffled"], capsys)["runs"][0]["accuracy"]
    assert shuffled == straight
    assert straight > 0.9  # well-separated classes: the pairing is right, not just equal


def test_out_of_core_gda_moves_statistics_to_the_bank_order(store, capsys):
    common = ["gda", "--store", store, "--train", "train", "--test", "test", "--bank", "shuffled",
              "--param", "alpha=1.0"]
    in_memory = solve(common, capsys)["runs"][0]["accuracy"]
    streamed = solve([*common, "--chunk-rows", "7"], capsys)["accuracy"]
    assert streamed == in_memory > 0.9


def test_a_saved_model_names_its_classes_in_the_bank_order(store, capsys):
    solve(["gda", "--store", store, "--train", "train", "--bank", "shuffled", "--save", "shuffled-gda"], capsys)
    from solvers.persistence import load_from_store

    with FeatureStore(store) as reader:
        model = load_from_store(reader, "shuffled-gda")
        X = reader.features("test/enc", "test")
        y = reader.labels("test")
    assert model.class_names_ == [NAMES[i] for i in ORDER]
    predicted = [model.class_names_[k] for k in model.predict(X)]
    assert np.mean(np.array(predicted) == np.array(NAMES)[y]) > 0.9

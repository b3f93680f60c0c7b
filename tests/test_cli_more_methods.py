"""fs solve amu / label-free / gda --incremental on a store with a CLIP-like encoder (with a class
text bank) and an auxiliary image-only encoder over the same splits."""
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
    path = tmp_path_factory.mktemp("more") / "s.h5"
    labels, clip, aux, T = make_aux_store(path, 0, CLASSES, SIZES)
    return path, labels, clip, aux, T


def test_amu_cli_matches_the_solver_and_saves(store, capsys):
    path, labels, clip, aux, T = store
    code, out, err = run(["solve", "amu", "--store", path, "--encoder", "test/enc", "--aux-encoder", "test/aux",
                          "--train", "train", "--val", "val", "--test", "test", "--save", "amu1", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    from solvers.few_shot.amu import AMU

    X = {s: np.hstack([clip[s], aux[s]]).astype(np.float32) for s in labels}
    model = AMU(text_weights=T.astype(np.float32)).fit(X["train"], labels["train"], X["val"], labels["val"])
    run_ = summary["runs"][0]
    assert run_["accuracy"] == pytest.approx(model.score(X["test"], labels["test"]))
    assert run_["gain"] == pytest.approx(run_["accuracy"] - run_["zero_shot_accuracy"])
    assert summary["aux_encoder"] == "test/aux" and summary["saved"] == ["amu1"]
    from solvers.persistence import load_from_store

    with FeatureStore(path) as reader:
        loaded = load_from_store(reader, "amu1")
    np.testing.assert_allclose(loaded.decision_function(X["test"]), model.decision_function(X["test"]), rtol=1e-6)


def test_amu_needs_an_aux_encoder_and_a_real_one(store, capsys):
    path = store[0]
    code, _, err = run(["solve", "amu", "--store", path, "--encoder", "test/enc", "--train", "train"], capsys)
    assert code == 2 and "--aux-encoder" in err
    code, _, err = run(["solve", "amu", "--store", path, "--encoder", "test/enc", "--aux-encoder", "nope",
                        "--train", "train"], capsys)
    assert code == 2 and "no encoder 'nope'" in err and err.count("\n") == 1
    code, _, err = run(["solve", "gda", "--store", path, "--encoder", "test/enc", "--aux-encoder", "test/aux",
                        "--train", "train"], capsys)
    assert code == 2 and "--aux-encoder is for" in err


def test_label_free_transductive_and_inductive(store, capsys):
    path, labels, clip, aux, T = store
    args = ["solve", "label-free", "--store", path, "--encoder", "test/enc", "--aux-encoder", "test/aux",
            "--unlabelled", "pool", "--rounds", "2", "--param", "k_per_class=5"]
    code, out, err = run(args + ["--test", "pool", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["mode"] == "transductive" and summary["train"] == "pool"
    from solvers.unlabelled.label_free import LabelFree

    X = np.hstack([clip["pool"], aux["pool"]]).astype(np.float32)
    model = LabelFree(text_weights=T.astype(np.float32), rounds=2, k_per_class=5).fit(X)
    assert summary["runs"][0]["accuracy"] == pytest.approx(model.score(X, labels["pool"]))
    code, out, err = run(args + ["--test", "test"], capsys)
    assert code == 0, err
    assert "inductive evaluation on 'test'" in err and "gain" in out and "zero-shot" in out


def test_unlabelled_and_rounds_are_refused_elsewhere(store, capsys):
    path = store[0]
    code, _, err = run(["solve", "gda", "--store", path, "--unlabelled", "pool"], capsys)
    assert code == 2 and "--unlabelled" in err
    code, _, err = run(["solve", "gda", "--store", path, "--train", "train", "--rounds", "2"], capsys)
    assert code == 2 and "--rounds" in err
    code, _, err = run(["solve", "label-free", "--store", path, "--unlabelled", "pool", "--shots", "2"], capsys)
    assert code == 2 and "--shots" in err and "unlabelled" in err


def test_incremental_table(store, tmp_path, capsys):
    path, labels, clip, _, T = store
    sessions = tmp_path / "sessions.json"
    sessions.write_text(json.dumps({"base": ["c0", "c1", "c2"], "sessions": [["c3", "c4"], [5]], "shots": 2}))
    args = ["solve", "gda", "--store", path, "--encoder", "test/enc", "--train", "train", "--test", "test",
            "--incremental", sessions]
    code, out, err = run(args + ["--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert [r["classes"] for r in summary["sessions"]] == [3, 5, 6]
    assert [r["new_rows"] for r in summary["sessions"]] == [15, 4, 2]
    assert summary["drop"] == pytest.approx(summary["sessions"][0]["accuracy"] - summary["sessions"][-1]["accuracy"])
    assert "alpha fixed at 1.0" in err
    code, out, _ = run(args, capsys)
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["base", "1", "2", "average", "drop"]
    sessions.write_text(json.dumps({"base": ["c0", "zebra"], "sessions": []}))
    code, _, err = run(args, capsys)
    assert code == 2 and "'zebra'" in err


def test_solve_list_has_the_new_solvers(capsys):
    code, out, _ = run(["solve", "--list"], capsys)
    assert code == 0
    assert "amu  (AMU): AMU-Tuning" in out and "label-free  (LabelFree): Label-free" in out
    assert "--param rounds=3" in out and "--param uncertainty=\"moment\"" in out


def test_label_free_claims_no_gain_on_noise(tmp_path, capsys):
    """Features unrelated to the labels: the report says the gain is not significant."""
    rng = np.random.default_rng(7)
    labels = {"pool": np.arange(300) % 3}
    path = make_feature_store(tmp_path / "noise.h5", {"pool": rng.standard_normal((300, 8))}, labels=labels,
                              classes={"pool": CLASSES[:3]})
    with FeatureStore(path, mode="a") as writer:
        w = rng.standard_normal((3, 8)).astype(np.float32)
        writer.put_text_bank("test/enc", "pool/simple", w, CLASSES[:3], kind="classes", classes=CLASSES[:3],
                             templates=["a {}"], per_template=w[:, None, :])
    code, out, err = run(["solve", "label-free", "--store", path, "--unlabelled", "pool", "--test", "pool",
                          "--param", "k_per_class=20", "--json"], capsys)
    assert code == 0, err
    run_ = json.loads(out)["runs"][0]
    assert not run_["gain_significant"] and abs(run_["gain"]) < 3 * run_["gain_se"] + 0.02
    code, out, _ = run(["solve", "label-free", "--store", path, "--unlabelled", "pool", "--test", "pool",
                        "--param", "k_per_class=20"], capsys)
    assert "no gain claimed" in out


def test_incremental_60_plus_8_sessions_of_5_way_5_shot(tmp_path, capsys):
    """The CIFAR-100 FSCIL layout on a synthetic 100-class store: the table equals the protocol run
    on the same arrays (solvers.few_shot.class_incremental, itself checked against union fits)."""
    from solvers.few_shot.class_incremental import fscil_table
    from solvers.few_shot.gda import GDA

    rng = np.random.default_rng(11)
    names = [f"k{i:03d}" for i in range(100)]
    centres = 1.5 * rng.standard_normal((100, 16))
    labels = {"train": np.repeat(np.arange(100), 12), "test": np.repeat(np.arange(100), 6)}
    feats = {s: centres[y] + rng.standard_normal((len(y), 16)) for s, y in labels.items()}
    path = make_feature_store(tmp_path / "fscil.h5", feats, labels=labels, classes={s: names for s in labels})
    order = rng.permutation(100)
    sessions = tmp_path / "sessions.json"
    sessions.write_text(json.dumps({"base": [names[i] for i in order[:60]],
                                    "sessions": [[names[i] for i in order[60 + 5 * s: 65 + 5 * s]] for s in range(8)]}))
    code, out, err = run(["solve", "gda", "--store", path, "--train", "train", "--test", "test",
                          "--incremental", sessions, "--seeds", "3", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    with FeatureStore(path) as reader:
        X, Xt = reader.features("test/enc", "train"), reader.features("test/enc", "test")
    expected = fscil_table(lambda o: GDA(), X, labels["train"], Xt, labels["test"],
                           [order[:60]] + [order[60 + 5 * s: 65 + 5 * s] for s in range(8)], shots=5, seed=3)
    assert [r["accuracy"] for r in summary["sessions"]] == pytest.approx([r["accuracy"] for r in expected["sessions"]])
    assert len(summary["sessions"]) == 9 and summary["shots"] == 5 and summary["text_bank"] is None
    assert "without zero-shot text weights" in err


def test_incremental_maps_a_wider_bank_onto_the_split_classes(store, tmp_path, capsys):
    """A text bank listing more classes, in another order, gives each class its own prompt row."""
    path, labels, clip, _, T = store
    import shutil

    copy = tmp_path / "wide.h5"
    shutil.copy(path, copy)
    wide = ["zz"] + CLASSES[::-1]
    W = np.vstack([np.ones((1, 8)), T[::-1]]).astype(np.float32)
    with FeatureStore(copy, mode="a") as writer:
        writer.put_text_bank("test/enc", "wide", W, wide, kind="classes", classes=wide, templates=["a {}"],
                             per_template=W[:, None, :])
    sessions = tmp_path / "sessions.json"
    sessions.write_text(json.dumps({"base": ["c0", "c1", "c2"], "sessions": [["c3", "c4", "c5"]], "shots": 2}))
    common = ["solve", "gda", "--store", copy, "--encoder", "test/enc", "--train", "train", "--test", "test",
              "--incremental", sessions, "--json"]
    code, out_wide, err = run(common + ["--bank", "wide"], capsys)
    assert code == 0, err
    code, out_own, err = run(common + ["--bank", "train/simple"], capsys)
    assert code == 0, err
    assert json.loads(out_wide)["sessions"] == json.loads(out_own)["sessions"]

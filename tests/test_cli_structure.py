"""The layering (solvers/ arrays in, logits out; workflows/ reads the store), the CLI's error
contract (one line, exit 2 for user errors; tracebacks for bugs), labels mapped through class
names between splits and models, and what `fs solve` reports."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.store_fixtures import make_feature_store

CLASSES = ["cat", "dog", "emu"]
KEY = "test/enc"


def _clusters(rng, labels, dim=8):
    centres = np.eye(len(CLASSES), dim) * 4.0
    return centres[labels] + rng.standard_normal((len(labels), dim))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """train/val over cat, dog, emu; a test split whose folder has no cat (classes dog, emu);
    a class text bank for the train classes."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("structure") / "s.h5"
    y_train, y_val = np.repeat([0, 1, 2], 6), np.repeat([0, 1, 2], 3)
    y_test = np.repeat([0, 1], 5)  # indices into ["dog", "emu"]
    make_feature_store(path, {"train": _clusters(rng, y_train), "val": _clusters(rng, y_val),
                              "test": _clusters(rng, y_test + 1)},
                       labels={"train": y_train, "val": y_val, "test": y_test},
                       classes={"train": CLASSES, "val": CLASSES, "test": ["dog", "emu"]})
    with FeatureStore(path, mode="a") as writer:
        weights = np.eye(3, 8, dtype=np.float32)
        writer.put_text_bank(KEY, "train/simple", weights, [f"a photo of a {c}." for c in CLASSES],
                             kind="classes", classes=CLASSES, templates=["a photo of a {}."],
                             per_template=weights[:, None, :])
    return path


def _args(args, store_path):
    return [str(store_path) if a == "STORE" else a for a in args]


STORAGE = {"pool", "shots", "bank", "captions_bank", "class_captions", "synonyms", "real_bank", "retrieval",
           "fallback_bank", "cap"}


def test_no_estimator_holds_storage_parameters():
    from solvers.registry import NAMES, solver_class

    for name in NAMES:
        cls = solver_class(name)
        held = STORAGE & set(cls._get_param_names())
        assert not held, f"{name} holds {held}"
        assert not hasattr(cls, "store_inputs")


def test_registry_copies_hold_classes():
    from solvers.few_shot.gda import GDA
    from solvers.registry import SOLVERS

    copied = dict(SOLVERS)
    assert copied["gda"] is GDA and all(isinstance(v, type) for v in copied.values())


def test_solve_list_offers_hyper_parameters_and_inputs_in_whole_sentences(capsys):
    from solvers.registry import NAMES

    code, out, _ = run(["solve", "--list"], capsys)
    assert code == 0
    headers = [line for line in out.splitlines() if not line.startswith(" ")]
    assert [h.split()[0] for h in headers] == list(NAMES)
    for header in headers:
        assert header.rstrip().endswith((".", ")")), header
    for data in ("text_weights", "support_features", "prompt_weights", "retrieved_features", "descriptors="):
        assert f"--param {data}" not in out
    assert "--input pool=" in out and "--input class_captions=" in out and "--input bank=" in out


def test_tipx_search_in_gamma_blocks_equals_one_block(monkeypatch):
    import solvers.support_sets.tip_x as tipx

    rng = np.random.default_rng(3)
    T = np.eye(3, 6) + 0.1 * rng.standard_normal((3, 6))
    F = np.repeat(np.eye(3, 6), 4, axis=0) + 0.5 * rng.standard_normal((12, 6))
    yv = rng.integers(0, 3, 20)
    Xv = np.eye(3, 6)[yv] + 0.8 * rng.standard_normal((20, 6))
    params = dict(text_weights=T, support_features=F, support_labels=np.repeat(np.arange(3), 4),
                  search_steps=(3, 4, 7))
    whole = tipx.TipX(**params).fit(X_val=Xv, y_val=yv)
    monkeypatch.setattr(tipx, "SEARCH_BLOCK_ELEMENTS", 2 * 20 * 3)  # two gammas per block
    blocked = tipx.TipX(**params).fit(X_val=Xv, y_val=yv)
    assert (blocked.alpha_, blocked.beta_, blocked.gamma_, blocked.val_accuracy_) == \
           (whole.alpha_, whole.beta_, whole.gamma_, whole.val_accuracy_)


# ---------------------------------------------------------------- error contract
def test_no_arguments_prints_help_and_exits_0(capsys):
    code, out, err = run([], capsys)
    assert code == 0 and err == "" and "Commands:" in out and "solve" in out


def test_a_bug_keeps_its_traceback_and_a_user_error_is_one_line(monkeypatch, capsys):
    import solvers.registry
    from solvers.errors import InputError

    def bug():
        raise ValueError("an internal bug")

    monkeypatch.setattr(solvers.registry, "describe", bug)
    with pytest.raises(ValueError, match="an internal bug"):
        run(["solve", "--list"], capsys)

    def user_error():
        raise InputError("a bad input")

    monkeypatch.setattr(solvers.registry, "describe", user_error)
    code, _, err = run(["solve", "--list"], capsys)
    assert code == 2 and err == "error: a bad input\n"
    monkeypatch.setenv("FS_DEBUG", "1")
    code, _, err = run(["solve", "--list"], capsys)
    assert code == 2 and "Traceback" in err and err.endswith("error: a bad input\n")


@pytest.mark.parametrize("args, message", [
    (["solve", "gda", "--store", "STORE", "--train", "train", "--param", "foo=1"], "no parameter 'foo'"),
    (["solve", "gda", "--store", "STORE", "--train", "train", "--param", "alpha=abc"],
     "--param alpha=abc: alpha takes float"),
    (["solve", "gda", "--store", "STORE", "--train", "train", "--param", "text_weights=1"], "read from the store"),
    (["solve", "tip-x", "--store", "STORE", "--param", "pool=train"], "give --input pool="),
    (["solve", "gda", "--store", "STORE", "--train", "train", "--input", "pool=train"], "gda has no input 'pool'"),
    (["solve", "tip-x", "--store", "STORE", "--input", "shots=abc"], "shots='abc': expected a whole number"),
    (["solve", "gda", "--store", "STORE", "--train", "train", "--shots", "99"],
     "fewer than --shots 99; add --allow-fewer"),
    (["eval", "--store", "STORE", "--models", "", "--split", "val"], "--models is empty"),
    (["eval", "--store", "STORE", "--models", " , ", "--split", "val"], "--models is empty"),
    (["ensemble", "--store", "STORE", "--models", "zero-shot", "--grid-step", "0", "--save", "e"], "--grid-step"),
    (["ensemble", "--store", "STORE", "--models", "zero-shot", "--save", "e"], "give --val"),
    (["ensemble", "--store", "STORE", "--models", "zero-shot", "--weights", "nan", "--save", "e"], "--weights"),
    (["schur", "score", "--store", "STORE", "--split", "train", "--bank", "train/simple",
      "--kernel", "gaussian", "--sigma", "0"], "--sigma"),
    (["predict", "--store", "STORE", "--models", "zero-shot,g", "--split", "val"], "takes one model; got 2"),
    (["predict", "--store", "STORE", "--models", ",", "--split", "val"], "--models is empty"),
    (["ood", "--store", "STORE", "--models", "", "--id-split", "val", "--ood-split", "train"], "--models is empty"),
    (["index", "--store", "STORE", "--split", "train", "--seeds", "1,2"], "uses one seed; got 2 (1,2)"),
    (["index", "--store", "STORE", "--split", "train", "--seeds", "x"], "--seeds takes comma-separated seeds"),
    (["curate", "--store", "STORE", "--pool", "train", "--metadata", "m.txt", "--output", "o.csv", "--seeds", "3,4"],
     "uses one seed"),
    (["anomaly", "--store", "STORE", "--split", "train", "--object", "cat", "--seeds", "1,2"], "uses one seed"),
    (["extract", "x", "--store", "STORE", "--model", "m", "--pretrained", "random", "--seeds", "1,2"],
     "uses one seed"),
])
def test_user_errors_are_one_line_exit_2(store, capsys, args, message):
    code, out, err = run(_args(args, store), capsys)
    assert code == 2, err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1


def test_predict_of_a_missing_model_leaves_no_file(store, tmp_path, capsys):
    out = tmp_path / "f.csv"
    code, _, err = run(["predict", "--store", store, "--models", "nope", "--split", "test", "--output", out], capsys)
    assert code == 2 and "no model 'nope'" in err and err.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_blas_thread_knob(monkeypatch, capsys):
    from threadpoolctl import threadpool_info

    from workflows.blas_threads import limited_blas

    with limited_blas(1):
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    monkeypatch.setenv("FS_BLAS_THREADS", "many")
    code, _, err = run(["solve", "--list"], capsys)
    assert code == 2 and "FS_BLAS_THREADS='many'" in err and err.count("\n") == 1


# ---------------------------------------------------------------- what fs solve reports
def test_solve_without_test_reports_validation_accuracy(store, capsys):
    from solvers.few_shot.gda import GDA

    code, out, err = run(["solve", "gda", "--store", store, "--train", "train", "--val", "val", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    run_ = report["runs"][0]
    assert "accuracy" not in run_ and report["test"] is None and report["mean_accuracy"] is None
    with FeatureStore(store) as reader:
        X, y = reader.features(KEY, "train"), reader.labels("train")
        Xv, yv = reader.features(KEY, "val"), reader.labels("val")
        T = reader.text(KEY, "train/simple")
    direct = GDA(text_weights=T).fit(X, y, X_val=Xv, y_val=yv)
    assert run_["val_accuracy"] == pytest.approx(direct.score(Xv, yv))
    code, out, _ = run(["solve", "gda", "--store", store, "--train", "train", "--val", "val"], capsys)
    assert "validation accuracy" in out and "test accuracy" not in out


def test_solve_names_its_text_bank_and_encoder_and_zeroshot_no_seed(store, capsys):
    code, out, err = run(["solve", "zero-shot", "--store", store, "--test", "val"], capsys)
    assert code == 0, err
    assert "text bank 'train/simple'" in out and f"encoder {KEY!r}" in out and "seed" not in out
    code, out, _ = run(["solve", "zero-shot", "--store", store, "--test", "val", "--json"], capsys)
    report = json.loads(out)
    assert report["text_bank"] == "train/simple" and report["runs"][0]["seed"] is None


def test_a_method_without_text_weights_says_so(tmp_path, capsys):
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 4)
    path = make_feature_store(tmp_path / "bare.h5", {"train": _clusters(rng, y)}, labels={"train": y},
                              classes={"train": CLASSES})
    code, out, err = run(["solve", "gda", "--store", path, "--train", "train", "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["text_bank"] is None and any("without zero-shot text weights" in n for n in report["notes"])
    assert "warning: no class text bank" in err


def test_encoder_defaults_to_the_only_one_and_several_are_named(store, tmp_path, capsys):
    code, _, err = run(["solve", "gda", "--store", store, "--train", "train", "--test", "val"], capsys)
    assert code == 0, err
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 4)
    two = tmp_path / "two.h5"
    make_feature_store(two, {"train": _clusters(rng, y)}, labels={"train": y}, classes={"train": CLASSES})
    make_feature_store(two, {"train": _clusters(rng, y)}, labels={"train": y}, classes={"train": CLASSES},
                       encoder="other/enc")
    code, _, err = run(["solve", "gda", "--store", two, "--train", "train"], capsys)
    assert code == 2 and "give --encoder" in err and "other/enc" in err and err.count("\n") == 1


# ---------------------------------------------------------------- labels through class names
def test_a_test_split_missing_a_class_is_scored_by_class_name(store, tmp_path, capsys):
    from solvers.few_shot.gda import GDA

    code, out, err = run(["solve", "gda", "--store", store, "--train", "train", "--val", "val", "--test", "test",
                          "--save", "g", "--json"], capsys)
    assert code == 0, err
    with FeatureStore(store) as reader:
        X, y = reader.features(KEY, "train"), reader.labels("train")
        Xv, yv = reader.features(KEY, "val"), reader.labels("val")
        Xt, yt = reader.features(KEY, "test"), reader.labels("test")
        T = reader.text(KEY, "train/simple")
    direct = GDA(text_weights=T).fit(X, y, X_val=Xv, y_val=yv)
    truth = yt + 1  # test's dog/emu are train's classes 1/2
    expected = direct.score(Xt, truth)
    assert expected > 0.8  # the clusters are separable: index-compared labels would score near 0
    assert json.loads(out)["runs"][0]["accuracy"] == pytest.approx(expected)

    code, out, err = run(["eval", "--store", store, "--models", "g,zero-shot", "--split", "test", "--json"], capsys)
    assert code == 0, err
    table = {r["model"]: r for r in json.loads(out)}
    assert table["g"]["top1"] == pytest.approx(expected)
    assert table["zero-shot"]["top1"] == pytest.approx(np.mean((Xt @ T.T).argmax(1) == truth))

    csv_path = tmp_path / "p.csv"
    code, _, err = run(["predict", "--store", store, "--models", "g", "--split", "test", "--output", csv_path], capsys)
    assert code == 0, err
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    predicted = direct.predict(Xt)
    assert [r["class"] for r in rows] == [CLASSES[p] for p in predicted]
    assert [int(r["label"]) for r in rows] == truth.tolist()


def test_a_split_with_a_class_the_model_lacks_is_refused(store, tmp_path, capsys):
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], 3)
    make_feature_store(store, {"zoo": _clusters(rng, y)}, labels={"zoo": y}, classes={"zoo": ["cat", "yak"]})
    code, _, err = run(["solve", "gda", "--store", store, "--train", "train", "--save", "g2"], capsys)
    assert code == 0, err
    code, _, err = run(["eval", "--store", store, "--models", "g2", "--split", "zoo"], capsys)
    assert code == 2 and "'yak'" in err and err.count("\n") == 1


@pytest.mark.parametrize("args", [
    ["text", "--store", "STORE", "--classes", "train"],
    ["text", "--store", "STORE", "--file", "WORDS"],
])
def test_a_second_writer_is_refused_before_the_checkpoint_loads(store, tmp_path, monkeypatch, capsys, args):
    import featurestore.encoders

    def must_not_load(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded although the store is locked")

    monkeypatch.setattr(featurestore.encoders, "load_encoder_from_info", must_not_load)
    (tmp_path / "words.txt").write_text("a cat\na dog\n")
    args = [str(tmp_path / "words.txt") if a == "WORDS" else a for a in args]
    with FeatureStore(store, mode="a"):
        code, _, err = run(_args(args, store), capsys)
    assert code == 2 and "writ" in err and err.count("\n") == 1


def test_eval_builds_zeroshot_on_the_saved_models_encoder(store, tmp_path, capsys):
    import shutil

    store = shutil.copy(store, tmp_path / "copy.h5")
    rng = np.random.default_rng(7)
    y = np.repeat([0, 1, 2], 3)
    code, _, err = run(["solve", "gda", "--store", store, "--train", "train", "--save", "g3"], capsys)
    assert code == 0, err
    make_feature_store(store, {"val": _clusters(rng, y, dim=4)}, labels={"val": y}, classes={"val": CLASSES},
                       encoder="second/enc")
    code, out, err = run(["eval", "--store", store, "--models", "zero-shot,g3", "--split", "val", "--json"], capsys)
    assert code == 0, err
    assert {r["encoder"] for r in json.loads(out)} == {KEY}


def test_temperature_on_its_search_bound_warns():
    from solvers.model_selection.temperature_scaling import calibrate
    from solvers.zero_shot.zero_shot import ZeroShot

    T = np.eye(3, 4)
    y = np.tile([0, 1, 2], 5)
    wrong = calibrate(ZeroShot(text_weights=T).fit(), np.eye(3, 4)[(y + 1) % 3], y)
    assert wrong.temperature == pytest.approx(np.exp(4.0), rel=1e-3)
    assert any("upper bound" in w for w in wrong.fit_warnings_)
    X = np.eye(3, 4)[y] + 0.9 * np.random.default_rng(0).standard_normal((15, 4))
    interior = calibrate(ZeroShot(text_weights=T, logit_scale=1.0).fit(), X, y)
    assert np.exp(-4) < interior.temperature < np.exp(4) and not getattr(interior, "fit_warnings_", [])


def test_a_new_class_folder_is_named(tmp_path):
    from featurestore.errors import ProvenanceError

    rng = np.random.default_rng(8)
    y = np.repeat([0, 1, 2], 2)
    path = make_feature_store(tmp_path / "n.h5", {"train": _clusters(rng, y)}, labels={"train": y},
                              classes={"train": CLASSES})
    with pytest.raises(ProvenanceError, match="new class\\(es\\) 'yak'"):
        make_feature_store(path, {"train": _clusters(rng, np.array([0, 1]))}, labels={"train": [0, 3]},
                           ids={"train": ["more-0", "more-1"]}, classes={"train": CLASSES + ["yak"]})


def test_bank_discovery_reads_no_bank_contents(store, monkeypatch):
    from featurestore.text.banks import find_class_bank
    from workflows.inputs.solver_inputs import text_weights

    with FeatureStore(store) as reader:
        calls = []
        original = reader.text_bank
        monkeypatch.setattr(reader, "text_bank", lambda *a: calls.append(a) or original(*a))
        assert find_class_bank(reader, KEY, CLASSES) == "train/simple"
        assert text_weights(reader, KEY, None, "test")[1] == "train/simple"  # a subset of the bank's classes
        assert calls == [(KEY, "train/simple")]  # only the chosen bank's weights are read


@pytest.mark.parametrize("args", [
    ["ood", "--store", "STORE", "--models", "zero-shot", "--id-split", "val", "--ood-split", "train"],
    ["schur", "score", "--store", "STORE", "--split", "train", "--bank", "train/simple"],
    ["index", "--store", "STORE", "--split", "train", "-q"],
    ["search", "--store", "STORE", "--split", "train", "--id", "train-00000", "-k", "2"],
    ["predict", "--store", "STORE", "--models", "zero-shot", "--split", "val"],
])
def test_encoder_may_be_left_out_everywhere(store, tmp_path, capsys, args):
    import shutil

    copy = shutil.copy(store, tmp_path / "copy.h5")  # fs index writes beside the store
    code, out, err = run(_args(args, copy), capsys)
    assert code == 0, err


def test_an_empty_class_folder_the_model_lacks_is_no_obstacle(store, tmp_path, capsys):
    import shutil

    copy = shutil.copy(store, tmp_path / "copy.h5")
    rng = np.random.default_rng(9)
    y = np.array([0, 0, 1, 1])  # "dog", "emu"; the "yak" folder was empty
    make_feature_store(copy, {"shelter": _clusters(rng, y + 1)}, labels={"shelter": y},
                       classes={"shelter": ["dog", "emu", "yak"]})
    code, _, err = run(["solve", "gda", "--store", copy, "--train", "train", "--save", "g4"], capsys)
    assert code == 0, err
    code, out, err = run(["eval", "--store", copy, "--models", "g4", "--split", "shelter", "--json"], capsys)
    assert code == 0, err
    from solvers.persistence import load_from_store

    with FeatureStore(copy) as reader:
        expected = load_from_store(reader, "g4").score(reader.features(KEY, "shelter"), y + 1)
    assert json.loads(out)[0]["top1"] == pytest.approx(expected) and expected > 0.5

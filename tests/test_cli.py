"""The `fs` command line end to end on the tiny model, and its one-line errors."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from cli.main import main
from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.images import write_class_tree, write_random_image


@pytest.fixture(scope="module")
def pets_store(tmp_path_factory, tiny_checkpoint):
    """A store with train/val/test splits of a 3-class folder, class prompts encoded."""
    from tests.conftest import TINY_CONFIG, TINY_MODEL

    root = tmp_path_factory.mktemp("pets")
    store = root / "pets.h5"
    for split, n, seed in (("train", 6, 0), ("val", 3, 100), ("test", 4, 200)):
        write_class_tree(root / split, {"cat": n, "dog": n, "emu": n}, seed=seed)
        main(["extract", str(root / split), "--store", str(store), "--model", TINY_MODEL, "--model-config",
              str(TINY_CONFIG), "--pretrained", str(tiny_checkpoint), "--workers", "0", "-q"])
    with FeatureStore(store) as reader:
        key = reader.encoders()[0]
    main(["text", "--store", str(store), "--encoder", key, "--classes", "train", "--templates", "simple"])
    return store, key


def test_help_is_lazy():
    code = ("import sys\nfrom cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'open_clip', 'faiss', 'sklearn', 'h5py') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "extract" in out and "search" in out and "solve" in out
    assert "HEAVY []" in out


def test_info_lists_everything(pets_store, capsys):
    store, key = pets_store
    code, out, _ = run(["info", "--store", store, "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and [s["name"] for s in info["splits"]] == ["test", "train", "val"]
    assert info["encoders"][0]["key"] == key
    assert info["encoders"][0]["features"]["train"] == {"rows": 18, "done": 18, "views": False}
    assert info["encoders"][0]["text_banks"] == ["train/simple"]


def test_search_matches_brute_force(pets_store, capsys):
    store, key = pets_store
    code, out, err = run(["index", "--store", store, "--encoder", key, "--split", "train", "-q"], capsys)
    assert code == 0, err
    code, out, _ = run(["search", "--store", store, "--encoder", key, "--split", "train",
                        "--id", "cat/1.jpg", "--query", "a photo of a dog", "-k", "4", "--json"], capsys)
    results = json.loads(out)
    with FeatureStore(store) as reader:
        X, ids = reader.features(key, "train"), reader.ids("train")
    query = X[list(ids).index("cat/1.jpg")]
    expected = np.argsort(-(X @ query))[:4]
    assert [h["id"] for h in results[0]["hits"]] == [ids[i] for i in expected]
    np.testing.assert_allclose([h["score"] for h in results[0]["hits"]], (X @ query)[expected], atol=1e-5)
    assert len(results[1]["hits"]) == 4


def test_solve_predict_eval_round_trip(pets_store, tmp_path, capsys, monkeypatch):
    import workflows.streaming
    from solvers import GDA

    monkeypatch.setattr(workflows.streaming, "DEFAULT_CHUNK_ROWS", 5)  # fs predict streams 12 rows in 3 chunks

    store, key = pets_store
    code, out, err = run(["solve", "gda", "--store", store, "--encoder", key, "--train", "train", "--val", "val",
                          "--test", "test", "--shots", "4", "--seeds", "3", "--save", "gda4", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    with FeatureStore(store) as reader:
        X, y = reader.features(key, "train"), reader.labels("train")
        Xv, yv = reader.features(key, "val"), reader.labels("val")
        Xt, yt = reader.features(key, "test"), reader.labels("test")
        T = reader.text(key, "train/simple")
    from solvers.model_selection.fewshot import fewshot_split
    rows = fewshot_split(y, 4, 3)
    direct = GDA(text_weights=T).fit(X[rows], y[rows], X_val=Xv, y_val=yv)
    assert report["runs"][0]["accuracy"] == pytest.approx(direct.score(Xt, yt))
    assert report["saved"] == ["gda4"]

    out_csv = tmp_path / "preds.csv"
    code, out, err = run(["predict", "--store", store, "--models", "gda4", "--split", "test", "--output", out_csv],
                         capsys)
    assert code == 0, err
    with open(out_csv) as f:
        rows_out = list(csv.DictReader(f))
    assert [int(r["prediction"]) for r in rows_out] == direct.predict(Xt).tolist()
    assert {r["class"] for r in rows_out} <= {"cat", "dog", "emu"}

    code, out, err = run(["eval", "--store", store, "--models", "zero-shot,gda4", "--split", "test", "--json"], capsys)
    assert code == 0, err
    table = {r["model"]: r for r in json.loads(out)}
    assert table["gda4"]["top1"] == pytest.approx(direct.score(Xt, yt))
    zs = (100 * Xt @ T.T).argmax(1)
    assert table["zero-shot"]["top1"] == pytest.approx(np.mean(zs == yt))


def test_solve_list_names_every_solver(capsys):
    code, out, _ = run(["solve", "--list"], capsys)
    for name in ("zero-shot", "gda", "linear-probe", "tip-adapter", "knn", "unsupervised-gda"):
        assert name in out


@pytest.mark.parametrize("args, message", [
    (["info", "--store", "/nonexistent/x.h5"], "no store"),
    (["solve", "gda", "--store", "STORE", "--encoder", "nope/none", "--train", "train"], "no encoder 'nope/none'"),
    (["predict", "--store", "STORE", "--models", "missing", "--split", "test"], "no model 'missing'"),
    (["solve", "gda", "--store", "STORE", "--encoder", "KEY", "--train", "train", "--shots", "99"],
     "fewer than --shots 99; add --allow-fewer"),
    (["text", "--store", "STORE", "--encoder", "KEY"], "exactly one of --classes or --file"),
])
def test_user_errors_are_one_line(pets_store, capsys, args, message):
    store, key = pets_store
    args = [str(store) if a == "STORE" else key if a == "KEY" else a for a in args]
    code, out, err = run(args, capsys)
    assert code == 2
    assert message in err and err.startswith("error: ") and err.count("\n") == 1


def test_extract_refuses_a_locked_store(pets_store, tmp_path, capsys, fs_args):
    store, _ = pets_store
    write_random_image(tmp_path / "more" / "a.jpg")
    with FeatureStore(store, mode="a"):
        code, _, err = run(["extract", tmp_path / "more", "--store", store, *fs_args, "-q"], capsys)
    assert code == 2 and ("only one writer" in err or "already open for writing" in err) and err.count("\n") == 1


def test_out_of_core_gda_equals_in_memory(pets_store, capsys):
    store, key = pets_store
    base = ["solve", "gda", "--store", store, "--encoder", key, "--train", "train", "--val", "val",
            "--test", "test", "--json"]
    code, out, err = run(base, capsys)
    assert code == 0, err
    in_memory = json.loads(out)["runs"][0]
    code, out, err = run(base + ["--chunk-rows", "5"], capsys)
    assert code == 0, err
    streamed = json.loads(out)
    assert streamed["accuracy"] == pytest.approx(in_memory["accuracy"])
    assert streamed["alpha"] == in_memory["chosen"]["alpha_"]


def test_calibrate_fits_the_temperature_on_validation(pets_store, capsys):
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    from solvers import GDA

    store, key = pets_store
    code, out, err = run(["solve", "gda", "--store", store, "--encoder", key, "--train", "train", "--val", "val",
                          "--calibrate", "--save", "gda-cal", "--json"], capsys)
    assert code == 0, err
    chosen = json.loads(out)["runs"][0]["chosen"]
    with FeatureStore(store) as reader:
        X, y = reader.features(key, "train"), reader.labels("train")
        Xv, yv = reader.features(key, "val"), reader.labels("val")
        T = reader.text(key, "train/simple")
    logits = GDA(text_weights=T).fit(X, y, X_val=Xv, y_val=yv).decision_function(Xv)

    def nll(log_t):
        return -np.mean(log_softmax(logits / np.exp(log_t), axis=1)[np.arange(len(yv)), yv])

    best = minimize_scalar(nll, bounds=(-4, 4), method="bounded").x
    assert np.log(chosen["temperature"]) == pytest.approx(best, abs=1e-3)
    assert nll(np.log(chosen["temperature"])) <= nll(0.0) + 1e-9
    with FeatureStore(store) as reader:
        from solvers.persistence import load_from_store
        assert load_from_store(reader, "gda-cal").temperature == pytest.approx(chosen["temperature"])


def test_ensemble_is_a_saved_solver_equal_to_the_formula(pets_store, capsys):
    from scipy.special import softmax

    from solvers import GDA, LinearProbe

    store, key = pets_store
    for name, extra in (("gda-e", []), ("lp-e", ["--param", "C=1.0"])):
        solver = "gda" if name == "gda-e" else "linear-probe"
        code, _, err = run(["solve", solver, "--store", store, "--encoder", key, "--train", "train",
                            "--save", name, *extra], capsys)
        assert code == 0, err
    code, out, err = run(["ensemble", "--store", store, "--models", "gda-e,lp-e", "--weights", "0.25,0.75",
                          "--save", "ens", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["weights"] == [0.25, 0.75]
    code, out, err = run(["eval", "--store", store, "--models", "ens", "--split", "test", "--json"], capsys)
    assert code == 0, err
    with FeatureStore(store) as reader:
        X, y = reader.features(key, "train"), reader.labels("train")
        Xt, yt = reader.features(key, "test"), reader.labels("test")
        T = reader.text(key, "train/simple")
    gda = GDA(text_weights=T).fit(X, y)
    lp = LinearProbe(C=1.0, text_weights=T).fit(X, y)
    mixed = 0.25 * softmax(gda.decision_function(Xt), axis=1) + 0.75 * softmax(lp.decision_function(Xt), axis=1)
    assert json.loads(out)[0]["top1"] == pytest.approx(np.mean(mixed.argmax(1) == yt))
    code, _, err = run(["ensemble", "--store", store, "--models", "gda-e,logits:x", "--save", "bad"], capsys)
    assert code == 2 and "one split only" in err


def test_search_with_an_unreadable_query_image_is_one_line(pets_store, tmp_path, capsys):
    store, key = pets_store
    fake = tmp_path / "query.png"
    fake.write_text("this is not an image\n")
    code, _, err = run(["search", "--store", store, "--encoder", key, "--split", "train", "--image", fake], capsys)
    assert code == 2 and err.startswith("error: ") and "query.png" in err and err.count("\n") == 1

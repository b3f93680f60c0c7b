"""One solve path: `fs solve METHOD` and the `fs benchmark` cell with the same store, splits, shots
and seed give the same record (metrics, chosen hyper-parameters, validation rows, warnings), with
and without the augmented-view recipes (--views-as samples|mean) and with validation rows held out
of the training pool. The store is built so that a drift would show: unbalanced classes, a text
bank in another class order than the splits, and a validation split whose search moves the
hyper-parameters off their defaults."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run as fs

ENCODER = "test/enc"
CLASSES = ["ant", "bee", "cat", "dog", "eel", "fox"]
TRAIN_COUNTS = [12, 7, 9, 15, 6, 10]  # unbalanced: a sampler or prior that ignores it changes the record
METHODS = ["gda", "linear-probe", "tip-adapter", "knn"]
VIEWS = 3
DIM = 16


def _write_split(store: FeatureStore, split: str, X: np.ndarray, y: np.ndarray,
                 views: np.ndarray | None = None) -> None:
    """Rows through the store's writer API, as an extraction writes them (views: (N, V, D))."""
    ids = [f"{split}-{i:04d}" for i in range(len(y))]
    rows = store.add_rows(split, ids, [f"{split}/{i}.jpg" for i in ids], list(map(int, y)), classes=CLASSES,
                          source="test fixture")
    store.ensure_encoder(ENCODER, {"model": "test-model", "weights": "test-weights", "embed_dim": DIM})
    store.prepare_features(ENCODER, split, DIM, views=0 if views is None else views.shape[1], seed=0)
    store.begin_appending()
    order = np.argsort(rows)
    store.write_features(ENCODER, split, rows[order], X[order], np.ones(len(y), dtype=bool), [""] * len(y),
                         views=None if views is None else views[order])


def _unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def _build(path: Path, *, val: bool) -> Path:
    rng = np.random.default_rng(7)
    means = rng.normal(size=(len(CLASSES), DIM))

    def draw(counts: list[int], spread: float) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(len(CLASSES)), counts)
        return _unit(means[y] + spread * rng.normal(size=(y.size, DIM))), y

    X_train, y_train = draw(TRAIN_COUNTS, 1.3)
    views = _unit(X_train[:, None, :] + 0.5 * rng.normal(size=(len(y_train), VIEWS, DIM)))
    with FeatureStore(path, mode="a") as store:
        _write_split(store, "train", X_train, y_train, views)
        if val:
            _write_split(store, "val", *draw([5] * len(CLASSES), 1.3))
            pool, _ = draw([6] * len(CLASSES), 1.0)  # unlabelled retrieval pool (TIP-X's support set)
            _write_split(store, "pool", pool, np.full(len(pool), -1))
        _write_split(store, "test", *draw([8] * len(CLASSES), 1.3))
        order = [3, 0, 5, 1, 4, 2]  # the bank lists the classes in another order than the splits
        text = _unit(means[order] + 1.5 * rng.normal(size=(len(CLASSES), DIM)))
        store.put_text_bank(ENCODER, "train/simple", text, [CLASSES[i] for i in order], kind="classes",
                            classes=[CLASSES[i] for i in order])
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("solve_workflow")
    return {"val": _build(folder / "withval.h5", val=True), "noval": _build(folder / "noval.h5", val=False)}


def _benchmark(store: Path, out: Path, capsys, *extra: str, methods: list[str] = METHODS
               ) -> dict[tuple[str, str], dict[str, str]]:
    code, _, err = fs(["benchmark", "--store", store, "--encoder", ENCODER, "--methods", ",".join(methods),
                       "--shots", "3", "--seeds", "1,2", "--output", out, "-q", "--no-plot", *extra], capsys)
    assert code == 0, err
    with open(out / "results.csv", newline="") as f:
        return {(r["method"], r["seed"]): r for r in csv.DictReader(f)}


def _solve(store: Path, method: str, capsys, *extra: str) -> list[dict]:
    code, out, err = fs(["solve", method, "--store", store, "--encoder", ENCODER, "--train", "train",
                         "--test", "test", "--shots", "3", "--seeds", "1,2", "--json", "-q", *extra], capsys)
    assert code == 0, err
    return json.loads(out)["runs"]


def _same_record(row: dict[str, str], solved: dict) -> None:
    """A results.csv row and an `fs solve --json` run hold the same record, field for field."""
    metrics = {k: (None if row[k] == "" else float(row[k])) for k in solved["metrics"]}
    assert metrics == solved["metrics"]  # top1, top5, balanced_accuracy, ece, nll: float for float
    assert json.loads(row["hyperparameters"]) == solved["chosen"]
    assert json.loads(row["warnings"]) == solved["warnings"]
    assert (row["val"], row["sampler"]) == (solved["val"], solved["sampler"])
    assert float(row["top1"]) == solved["accuracy"]


@pytest.mark.parametrize("views_as", [None, "samples", "mean"])
def test_solve_and_benchmark_cell_give_the_same_record(stores, tmp_path, capsys, views_as):
    extra = () if views_as is None else ("--views-as", views_as)
    rows = _benchmark(stores["val"], tmp_path / "res", capsys, *extra)
    records = {}
    for method in METHODS:
        runs = _solve(stores["val"], method, capsys, "--val", "val", *extra)
        assert [r["seed"] for r in runs] == [1, 2] and all(r["views_as"] == views_as for r in runs)
        for solved in runs:
            _same_record(rows[(method, str(solved["seed"]))], solved)
        records[method] = runs[0]
    # the validation split moved every searched hyper-parameter off its default (1.0)
    assert records["gda"]["chosen"]["alpha_"] != 1.0
    assert records["linear-probe"]["chosen"]["C_"] != 1.0
    assert (records["tip-adapter"]["chosen"]["alpha_"], records["tip-adapter"]["chosen"]["beta_"]) != (1.0, 1.0)
    assert records["gda"]["metrics"]["top5"] is not None  # six classes
    tip = records["tip-adapter"]  # the search's own score is reported with the choice
    assert tip["chosen"]["val_accuracy_"] == pytest.approx(tip["val_metrics"]["top1"], abs=1e-6)


@pytest.mark.parametrize("extra", [("--calibrate",), ("--val-shots", "2"), ("--sampler", "coop")])
def test_calibration_validation_shots_and_sampler_are_shared(stores, tmp_path, capsys, extra):
    methods = ["gda", "tip-adapter", "linear-probe"]
    rows = _benchmark(stores["val"], tmp_path / "res", capsys, "--val", "val", *extra, methods=methods)
    for method in methods:
        for solved in _solve(stores["val"], method, capsys, "--val", "val", *extra):
            _same_record(rows[(method, str(solved["seed"]))], solved)
            if extra == ("--calibrate",):
                assert solved["chosen"]["temperature"] > 0
            if extra[0] == "--val-shots":
                assert solved["val_metrics"] != _solve(stores["val"], method, capsys, "--val", "val")[0]["val_metrics"]


def test_store_inputs_are_read_the_same_way(stores, tmp_path, capsys):
    code, _, err = fs(["benchmark", "--store", stores["val"], "--encoder", ENCODER, "--methods", "tip-x",
                       "--input", "tip-x.pool=pool", "--input", "tip-x.shots=3", "--output", tmp_path / "r", "-q",
                       "--no-plot"], capsys)
    assert code == 0, err
    with open(tmp_path / "r" / "results.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    code, out, err = fs(["solve", "tip-x", "--store", stores["val"], "--encoder", ENCODER, "--val", "val",
                         "--test", "test", "--input", "pool=pool", "--input", "shots=3", "--json", "-q"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["inputs"] == {"pool": "pool", "shots": 3}
    solved = report["runs"][0]
    assert {k: float(row[k]) for k in solved["metrics"]} == solved["metrics"]
    assert json.loads(row["hyperparameters"]) == solved["chosen"] and solved["chosen"]
    assert json.loads(row["warnings"]) == solved["warnings"] and row["val"] == solved["val"] == "val"


def test_views_change_the_record(stores, capsys):
    plain = _solve(stores["val"], "gda", capsys, "--val", "val")[0]
    samples = _solve(stores["val"], "gda", capsys, "--val", "val", "--views-as", "samples")[0]
    mean = _solve(stores["val"], "gda", capsys, "--val", "val", "--views-as", "mean")[0]
    assert len({json.dumps(r["metrics"]) for r in (plain, samples, mean)}) == 3


def test_held_out_validation_rows_give_the_same_record(stores, tmp_path, capsys):
    rows = _benchmark(stores["noval"], tmp_path / "res", capsys)
    for method in METHODS:
        for solved in _solve(stores["noval"], method, capsys, "--holdout", "4"):
            assert solved["val"] == "train-holdout (4/class)"
            assert any("held out of 'train'" in m for m in solved["warnings"])
            _same_record(rows[(method, str(solved["seed"]))], solved)


def test_without_validation_rows_the_defaults_are_said(stores, capsys):
    solved = _solve(stores["noval"], "gda", capsys)[0]
    assert solved["val"] is None and solved["chosen"]["alpha_"] == 1.0
    assert any("no validation split: gda keeps default_alpha=1" in m for m in solved["warnings"])


def test_notebook_path_is_the_same_record(stores, capsys):
    from workflows import load_dataset, run

    data = load_dataset(stores["val"], train="train", val="val", test="test")
    assert data.classes == ["dog", "ant", "fox", "bee", "eel", "cat"]  # the bank's order
    names = np.array(data.classes)[data.y_train]
    assert [int((names == c).sum()) for c in CLASSES] == TRAIN_COUNTS
    record = run("tip-adapter", data, shots=3, seed=2, views_as=None)
    solved = _solve(stores["val"], "tip-adapter", capsys, "--val", "val")[1]
    assert record.metrics == solved["metrics"] and record.chosen == solved["chosen"]
    assert record.warnings == solved["warnings"]


@pytest.mark.parametrize("method", METHODS)
def test_eval_of_saved_models_reports_what_solve_reported(stores, tmp_path, capsys, method):
    """fs eval scores a saved model with the solve workflow's metrics: the numbers fs solve printed,
    float for float, and for the seed group their mean and population std."""
    store = tmp_path / "copy.h5"
    store.write_bytes(stores["val"].read_bytes())
    runs = _solve(store, method, capsys, "--val", "val", "--calibrate", "--save", "m")
    code, out, err = fs(["eval", "--store", store, "--models", "m-seed1,m-seed2,m", "--split", "test", "--json"],
                        capsys)
    assert code == 0, err
    one, two, group = json.loads(out)
    assert {k: one[k] for k in runs[0]["metrics"]} == runs[0]["metrics"]
    assert {k: two[k] for k in runs[1]["metrics"]} == runs[1]["metrics"]
    for key in ("top1", "nll"):
        values = [r["metrics"][key] for r in runs]
        assert group[key] == pytest.approx(np.mean(values), abs=1e-15)
        assert group["std"][key] == pytest.approx(np.std(values), abs=1e-15)
    assert group["members"] == ["m-seed1", "m-seed2"]


@pytest.mark.parametrize("args, message", [
    (["--param", "gda.alpha=\"high\""], "alpha takes"),
    (["--param", "gda.text_weights=1"], "read from the store"),
    (["--views-as", "mean", "--methods", "zero-shot"], "does not fit on one"),
])
def test_benchmark_checks_params_as_solve_does(stores, tmp_path, capsys, args, message):
    code, _, err = fs(["benchmark", "--store", stores["val"], "--encoder", ENCODER, "--output", tmp_path / "r",
                       "-q", "--shots", "1", *args], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("args, message", [
    (["--val", "val", "--holdout", "2"], "not both"),
    (["--holdout", "2"], "give --shots"),
    (["--shots", "13"], "class 'eel' of split 'train' has only 6 row(s)"),
    (["--views-as", "mean", "--shots", "2", "--encoder", "nope"], "nope"),
])
def test_solve_refusals_are_one_line(stores, capsys, args, message):
    code, _, err = fs(["solve", "gda", "--store", stores["val"], "--train", "train", "--test", "test", *args], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_the_commands_only_parse_call_and_print():
    root = Path(__file__).parent.parent
    for module in ("cli/commands/solve.py", "cli/commands/benchmark.py", "cli/solve_output.py"):
        assert len((root / module).read_text().splitlines()) <= 150, module

"""Results as people keep them: fs eval of a seed group (mean +- std, error bars), result files in
CLIP_benchmark's shape from fs eval / fs solve --output, and fs results' CSV of many files.
Oracles: GDA fitted directly per seed, scikit-learn's metrics, NumPy's mean/std."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, top_k_accuracy_score

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.store_fixtures import make_feature_store

CLASSES = ["ant", "bee", "cat", "dog", "emu", "fox", "gnu"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("results") / "five.h5"
    labels = {"train": np.repeat(np.arange(7), 6), "val": np.repeat(np.arange(7), 3),
              "test": np.repeat(np.arange(7), 4)}
    make_feature_store(path, {s: np.eye(7, 12)[y] * 1.5 + rng.standard_normal((len(y), 12)) for s, y in labels.items()},
                       labels=labels, classes={s: CLASSES for s in labels}, model="ViT-B-32", weights="sha256-abc")
    with FeatureStore(path, mode="a") as writer:
        weights = (np.eye(7, 12) + 0.3 * rng.standard_normal((7, 12))).astype(np.float32)
        weights /= np.linalg.norm(weights, axis=1, keepdims=True)
        writer.put_text_bank("test/enc", "train/simple", weights, [f"a {c}" for c in CLASSES], kind="classes",
                             classes=CLASSES, templates=["a {}"], per_template=weights[:, None, :])
    return path


def _direct_fits(path, seeds):
    from solvers import GDA
    from solvers.model_selection.fewshot import fewshot_split

    with FeatureStore(path) as reader:
        X, y = reader.features("test/enc", "train"), reader.labels("train")
        Xv, yv = reader.features("test/enc", "val"), reader.labels("val")
        Xt, yt = reader.features("test/enc", "test"), reader.labels("test")
        T = reader.text("test/enc", "train/simple")
    probs = []
    for seed in seeds:
        rows = fewshot_split(y, 2, seed)
        probs.append(GDA(text_weights=T).fit(X[rows], y[rows], X_val=Xv, y_val=yv).predict_proba(Xt))
    return yt, probs


def test_eval_of_a_seed_group_is_mean_and_std_with_error_bars(store, tmp_path, capsys, monkeypatch):
    import workflows.reports.plots

    drawn = {}
    real_bar_chart = workflows.reports.plots.bar_chart

    def spy(names, values, **kwargs):
        drawn.update(names=list(names), values=list(values), errors=kwargs.get("errors"))
        return real_bar_chart(names, values, **kwargs)

    monkeypatch.setattr(workflows.reports.plots, "bar_chart", spy)
    code, out, err = run(["solve", "gda", "--store", store, "--train", "train", "--val", "val", "--test", "test",
                          "--shots", "2", "--seeds", "1,2,3", "--save", "g",
                          "--output", tmp_path / "solve.json", "-q"], capsys)
    assert code == 0, err
    code, out, err = run(["eval", "--store", store, "--models", "g,zero-shot", "--split", "test", "--json",
                          "--plot", tmp_path / "acc.png", "--output", tmp_path / "eval_{method}.json"], capsys)
    assert code == 0, err
    rows = {r["model"]: r for r in json.loads(out)}
    yt, probs = _direct_fits(store, [1, 2, 3])
    top1 = [np.mean(p.argmax(1) == yt) for p in probs]
    balanced = [balanced_accuracy_score(yt, p.argmax(1)) for p in probs]
    top5 = [top_k_accuracy_score(yt, p, k=5, labels=range(7)) for p in probs]
    assert rows["g"]["members"] == ["g-seed1", "g-seed2", "g-seed3"]
    assert rows["g"]["top1"] == pytest.approx(np.mean(top1)) and rows["g"]["std"]["top1"] == pytest.approx(np.std(top1))
    assert rows["g"]["balanced_accuracy"] == pytest.approx(np.mean(balanced))
    assert rows["g"]["std"]["balanced_accuracy"] == pytest.approx(np.std(balanced))
    assert rows["g"]["top5"] == pytest.approx(np.mean(top5))
    assert "std" not in rows["zero-shot"]
    assert (tmp_path / "acc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn["names"] == ["g", "zero-shot"]
    np.testing.assert_allclose(drawn["values"][0], 100 * np.mean(top1))
    np.testing.assert_allclose(drawn["errors"], [100 * np.std(top1), 0.0])

    # the result files: CLIP_benchmark's keys and metrics, the same numbers as the table
    result = json.loads((tmp_path / "eval_g.json").read_text())
    assert list(result)[:6] == ["dataset", "model", "pretrained", "task", "metrics", "language"]
    assert (result["dataset"], result["model"], result["pretrained"]) == ("test", "ViT-B-32", "enc")
    assert result["task"] == "classification" and result["seeds"] == [1, 2, 3]
    assert result["metrics"]["acc1"] == pytest.approx(np.mean(top1))
    assert result["metrics"]["mean_per_class_recall"] == pytest.approx(np.mean(balanced))
    assert result["metrics_std"]["acc1"] == pytest.approx(np.std(top1))
    zeroshot = json.loads((tmp_path / "eval_zero-shot.json").read_text())
    assert zeroshot["task"] == "zeroshot_classification" and "metrics_std" not in zeroshot
    solved = json.loads((tmp_path / "solve.json").read_text())
    assert solved["metrics"]["acc1"] == pytest.approx(np.mean(top1)) and solved["seeds"] == [1, 2, 3]
    assert solved["metrics"]["acc5"] == pytest.approx(np.mean(top5))

    # text table: mean +- std cells
    code, out, err = run(["eval", "--store", store, "--models", "g", "--split", "test"], capsys)
    assert code == 0 and f"{100 * np.mean(top1):.2f}+-{100 * np.std(top1):.2f}%" in out


def test_results_csv_of_many_files(store, tmp_path, capsys):
    # a file as CLIP_benchmark itself writes it, beside ours
    theirs = tmp_path / "cifar10.json"
    theirs.write_text(json.dumps({"dataset": "cifar10", "model": "ViT-B-32-quickgelu", "pretrained": "laion400m_e32",
                                  "task": "zeroshot_classification", "metrics": {"acc1": 0.9074, "acc5": 0.998},
                                  "language": "en"}))
    code, _, err = run(["eval", "--store", store, "--models", "zero-shot", "--split", "val",
                        "--output", tmp_path / "ours.json"], capsys)
    assert code == 0, err
    code, out, err = run(["results", theirs, tmp_path / "ours.json", "--csv", tmp_path / "all.csv"], capsys)
    assert code == 0, err
    with open(tmp_path / "all.csv") as handle:
        rows = list(csv.DictReader(handle))
    ours = json.loads((tmp_path / "ours.json").read_text())
    assert [r["dataset"] for r in rows] == ["cifar10", "val"]
    # CLIP_benchmark's names only inside the files: the table reads them as featurestore's
    assert ours["metrics"]["acc1"] is not None and "top1" not in ours["metrics"]
    assert float(rows[0]["top1"]) == 0.9074 and float(rows[0]["top5"]) == 0.998 and rows[0]["ece"] == ""
    assert float(rows[1]["balanced_accuracy"]) == pytest.approx(ours["metrics"]["mean_per_class_recall"])
    assert not {"acc1", "acc5", "mean_per_class_recall"} & set(rows[0])
    assert rows[1]["method"] == "zero-shot" and rows[1]["file"].endswith("ours.json")


def test_result_file_errors_are_one_line(store, tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"acc1": 1}')
    code, _, err = run(["results", tmp_path / "bad.json"], capsys)
    assert code == 2 and "is not a result file" in err and err.count("\n") == 1
    code, _, err = run(["eval", "--store", store, "--models", "zero-shot,zero-shot", "--split", "val",
                        "--output", tmp_path / "one.json"], capsys)
    assert code == 2 and "{method}" in err and err.count("\n") == 1


def test_saving_a_smaller_seed_group_says_which_older_members_it_removes(store, capsys):
    base = ["solve", "gda", "--store", store, "--train", "train", "--val", "val", "--test", "test", "--shots", "2",
            "-q"]
    code, out, err = run([*base, "--seeds", "1,2,3", "--save", "shrinking"], capsys)
    assert code == 0, err
    assert "removed model" not in out
    code, out, err = run([*base, "--seeds", "1,2", "--save", "shrinking", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["saved"] == ["shrinking-seed1", "shrinking-seed2"] and report["removed"] == ["shrinking-seed3"]
    code, out, err = run([*base, "--seeds", "4", "--save", "shrinking"], capsys)
    assert code == 0, err
    assert "saved model 'shrinking'" in out and "removed model" not in out
    with FeatureStore(store) as reader:
        assert [m for m in reader.models() if m.startswith("shrinking")] == ["shrinking", "shrinking-seed1",
                                                                          "shrinking-seed2"]
    code, out, err = run([*base, "--seeds", "5,6", "--save", "shrinking"], capsys)
    assert code == 0, err
    assert "removed model 'shrinking-seed1'" in out and "removed model 'shrinking-seed2'" in out

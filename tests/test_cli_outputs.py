"""fs predict --json/--quiet, class names in fs search --json, fs info --errors and fs
import-logits for the readable rows only, on a small store with two unreadable rows."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.store_fixtures import default_ids, make_feature_store

CLASSES = ["cat", "dog", "emu"]


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(5)
    labels = {"train": np.repeat([0, 1, 2], 4), "test": np.repeat([0, 1, 2], 3)}
    path = make_feature_store(tmp_path / "s.h5", {s: np.eye(3, 8)[y] * 2 + rng.standard_normal((len(y), 8))
                                                 for s, y in labels.items()},
                              labels=labels, classes={s: CLASSES for s in labels}, invalid={"test": [1, 5]})
    with FeatureStore(path, mode="a") as writer:
        weights = np.eye(3, 8, dtype=np.float32)
        writer.put_text_bank("test/enc", "train/simple", weights, [f"a {c}" for c in CLASSES], kind="classes",
                             classes=CLASSES, templates=["a {}"], per_template=weights[:, None, :])
    return path


def test_predict_json_has_the_csv_rows(store, tmp_path, capsys):
    code, _, err = run(["predict", "--store", store, "--models", "zero-shot", "--split", "test", "--output",
                        tmp_path / "p.csv", "-q"], capsys)
    assert code == 0, err
    with open(tmp_path / "p.csv") as handle:
        expected = list(csv.DictReader(handle))
    code, out, err = run(["predict", "--store", store, "--models", "zero-shot", "--split", "test", "--json", "-q"],
                         capsys)
    assert code == 0 and err == ""
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [r["id"] for r in expected] and len(rows) == 7  # 9 rows, 2 unreadable
    assert [r["class"] for r in rows] == [r["class"] for r in expected]
    assert [r["prediction"] for r in rows] == [int(r["prediction"]) for r in expected]
    assert [round(r["confidence"], 6) for r in rows] == [float(r["confidence"]) for r in expected]
    code, out, err = run(["predict", "--store", store, "--models", "zero-shot", "--split", "test", "--json", "-q",
                          "--output", tmp_path / "p.json"], capsys)
    summary = json.loads(out)
    assert code == 0 and summary["rows"] == 7 and json.loads((tmp_path / "p.json").read_text()) == rows
    with FeatureStore(store) as reader:
        X, y = reader.features("test/enc", "test"), reader.labels("test")
    assert summary["accuracy"] == pytest.approx(np.mean((X @ np.eye(3, 8).T).argmax(1) == y))


def test_search_json_names_the_class(store, capsys):
    code, out, err = run(["search", "--store", store, "--split", "train", "--id", "train-00005", "-k", "12",
                          "--json", "-q"], capsys)
    assert code == 0, err
    hits = json.loads(out)[0]["hits"]
    assert len(hits) == 12 and all(h["class"] == CLASSES[h["label"]] for h in hits)
    assert {h["class"] for h in hits} == set(CLASSES)


def test_info_errors_lists_every_unreadable_row(store, capsys):
    code, out, err = run(["info", "--store", store, "--errors", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    ids = default_ids("test", 9)
    assert [(r["split"], r["id"]) for r in rows] == [("test", ids[1]), ("test", ids[5])]
    assert all(r["reason"] == "unreadable image (test fixture)" and r["path"] for r in rows)
    code, out, err = run(["info", "--store", store, "--errors", "--split", "train"], capsys)
    assert code == 0 and out == "" and "0 unreadable rows" in err
    code, out, _ = run(["info", "--store", store, "--errors"], capsys)
    assert out.splitlines()[0] == f"test\t{ids[1]}\ttest/{ids[1]}.jpg\tunreadable image (test fixture)"


def test_import_logits_for_the_readable_rows_only(store, tmp_path, capsys):
    with FeatureStore(store) as reader:
        readable = list(reader.ids("test"))
    logits = np.arange(len(readable) * 3, dtype=np.float32).reshape(-1, 3)
    np.save(tmp_path / "l.npy", logits[::-1])
    (tmp_path / "ids.txt").write_text("\n".join(readable[::-1]) + "\n")
    code, out, err = run(["import-logits", "--store", store, "--split", "test", "--name", "r", "--ids",
                          tmp_path / "ids.txt", tmp_path / "l.npy"], capsys)
    assert code == 0, err
    assert "7 rows x 3 classes (2 unreadable rows without logits)" in out
    with FeatureStore(store) as reader:
        values, kind = reader.logits("r", "test")
    np.testing.assert_array_equal(values, logits)
    # a readable row left out is still refused
    (tmp_path / "ids.txt").write_text("\n".join(readable[1:]) + "\n")
    np.save(tmp_path / "l.npy", logits[1:])
    code, _, err = run(["import-logits", "--store", store, "--split", "test", "--name", "r", "--ids",
                        tmp_path / "ids.txt", tmp_path / "l.npy"], capsys)
    assert code == 2 and "1 row(s) of split 'test' have no logits" in err

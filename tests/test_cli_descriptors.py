"""`fs descriptors` and the description solvers through `fs solve` / `fs predict --explain`, checked
against the mean-cosine and marginalization formulas computed here from the stored arrays."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import featurestore
from featurestore.store.feature_store import FeatureStore
from tests.test_cli import pets_store, run  # noqa: F401  (module fixture: a 3-class store, tiny model)

DATA = Path(featurestore.__file__).parent / "data"


def unit_rows(A):
    return A / np.linalg.norm(A, axis=-1, keepdims=True)


def encode(store, key, capsys, kind, file, name):
    code, out, err = run(["descriptors", file, "--store", store, "--encoder", key, "--classes", "train",
                          "--kind", kind, "--name", name], capsys)
    assert code == 0, err
    return out


def test_descriptor_bank_solve_and_explain(pets_store, tmp_path, capsys):  # noqa: F811
    store, key = pets_store
    encode(store, key, capsys, "descriptors", DATA / "descriptors_example.json", "desc")
    with FeatureStore(store) as reader:
        bank = reader.text_bank(key, "desc")
        Xt, yt = reader.features(key, "test"), reader.labels("test")
    example = json.loads((DATA / "descriptors_example.json").read_text())
    assert bank["kind"] == "descriptors" and bank["classes"] == ["cat", "dog", "emu"]
    assert bank["groups"] == [c for c in ("cat", "dog", "emu") for _ in example[c]]
    assert bank["strings"][0] == f"cat, which {example['cat'][0]}"

    code, out, err = run(["solve", "descriptors", "--store", store, "--encoder", key, "--test", "test",
                          "--input", "bank=desc", "--save", "desc-model", "--json"], capsys)
    assert code == 0, err
    S = unit_rows(Xt) @ unit_rows(bank["weights"]).T
    groups = np.array(bank["groups"])
    scores = np.stack([S[:, groups == c].mean(axis=1) for c in ("cat", "dog", "emu")], axis=1)
    assert json.loads(out)["runs"][0]["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == yt))

    out_csv = tmp_path / "explained.csv"
    code, _, err = run(["predict", "--store", store, "--models", "desc-model", "--split", "test",
                        "--explain", "1", "--output", out_csv], capsys)
    assert code == 0, err
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    descriptors = np.array(bank["descriptors"])
    for i, row in enumerate(rows):
        c = int(row["prediction"])
        mine = np.flatnonzero(groups == ("cat", "dog", "emu")[c])
        assert row["explanation"].startswith(descriptors[mine[np.argmax(S[i, mine])]] + " (")


def test_fudd_and_perceptionclip_through_fs_solve(pets_store, capsys):  # noqa: F811
    store, key = pets_store
    encode(store, key, capsys, "descriptors", DATA / "descriptors_example.json", "desc")
    encode(store, key, capsys, "differential", DATA / "differential_example.json", "pairs")
    encode(store, key, capsys, "contexts", DATA / "contexts_example.json", "ctx")
    code, out, err = run(["solve", "fudd", "--store", store, "--encoder", key, "--test", "test",
                          "--input", "bank=pairs", "--input", "fallback_bank=desc", "--param", "top_k=2",
                          "--json"], capsys)
    assert code == 0, err
    assert 0 <= json.loads(out)["runs"][0]["accuracy"] <= 1
    code, out, err = run(["solve", "perception-clip", "--store", store, "--encoder", key, "--test", "test",
                          "--input", "bank=ctx", "--json"], capsys)
    assert code == 0, err
    with FeatureStore(store) as reader:
        bank = reader.text_bank(key, "ctx")
        Xt, yt = reader.features(key, "test"), reader.labels("test")
    assert bank["weights"].shape[:2] == (3, 6) and len(bank["contexts"]) == 6
    f = 100 * np.einsum("nd,czd->ncz", unit_rows(Xt), unit_rows(bank["weights"]))
    pz = np.exp(f - f.max()).sum(axis=1)
    pz /= pz.sum(axis=1, keepdims=True)
    py_z = np.exp(f - f.max(axis=1, keepdims=True))
    py_z /= py_z.sum(axis=1, keepdims=True)
    py = (py_z * pz[:, None, :]).sum(axis=2)
    assert json.loads(out)["runs"][0]["accuracy"] == pytest.approx(np.mean(py.argmax(1) == yt))
    code, out, err = run(["solve", "description-selection", "--store", store, "--encoder", key, "--train", "train",
                          "--val", "val", "--test", "test", "--input", "bank=desc", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["runs"][0]["chosen"]["n_select_"] in (1, 2, 4, 8, 16)


@pytest.mark.parametrize("data, message", [
    ({"cat": ["purrs"], "dog": ["barks"], "emu": ["runs"], "cow": ["moos"]}, "unknown class(es) 'cow'"),
    ({"cat": [], "dog": ["barks"], "emu": ["runs"]}, "empty list"),
])
def test_bad_descriptor_files_are_one_line_errors(pets_store, tmp_path, capsys, data, message):  # noqa: F811
    store, key = pets_store
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    code, _, err = run(["descriptors", path, "--store", store, "--encoder", key, "--classes", "train"], capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_bank_of_another_encoder_is_refused(pets_store, capsys):  # noqa: F811
    store, key = pets_store
    with FeatureStore(store) as reader:
        dim = reader.features(key, "test").shape[1]
    with FeatureStore(store, mode="a") as writer:
        writer.ensure_encoder("other/enc", {"model": "other", "weights": "w", "embed_dim": dim})
        writer.put_text_bank("other/enc", "foreign", np.eye(3, dim), ["a", "b", "c"], kind="descriptors",
                             classes=["cat", "dog", "emu"], groups=["cat", "dog", "emu"], descriptors=["a", "b", "c"],
                             prompt_classes=np.arange(3))
    code, _, err = run(["solve", "descriptors", "--store", store, "--encoder", key, "--test", "test",
                        "--input", "bank=foreign"], capsys)
    assert code == 2 and "encoded by encoder 'other/enc'" in err and err.count("\n") == 1
    code, _, err = run(["solve", "perception-clip", "--store", store, "--encoder", key, "--test", "test",
                        "--input", "bank=desc"], capsys)
    assert code == 2 and "not a 'contexts' bank" in err


def test_explain_needs_an_explaining_model(pets_store, capsys):  # noqa: F811
    store, key = pets_store
    code, _, err = run(["predict", "--store", store, "--models", "zero-shot", "--split", "test", "--encoder", key,
                        "--explain", "2"], capsys)
    assert code == 2 and "cannot explain" in err

"""`fs import-logits` (alignment by id, one-line refusals) and `fs ood` against metrics computed
in the test on a small synthetic store (no model needed)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.metrics import roc_auc_score

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.store_fixtures import default_ids, make_feature_store

CLASSES = ["a", "b", "c"]




@pytest.fixture
def ood_store(tmp_path):
    rng = np.random.default_rng(0)
    T = np.eye(3, 8)
    y = np.repeat(np.arange(3), 10)
    X_id = T[y] * 3 + rng.normal(scale=0.5, size=(30, 8))
    X_ood = rng.normal(scale=1.0, size=(20, 8))
    path = make_feature_store(tmp_path / "s.h5", {"test": X_id, "other": X_ood},
                              labels={"test": y}, classes={"test": CLASSES})
    with FeatureStore(path, mode="a") as w:
        w.put_text_bank("test/enc", "test/simple", T.astype(np.float32), CLASSES, kind="classes",
                        classes=CLASSES, templates=["{}"])
    return path, X_id, X_ood, y, T


def test_import_logits_aligns_by_id(ood_store, tmp_path, capsys):
    path, *_ = ood_store
    ids = default_ids("test", 30)
    logits = np.random.default_rng(1).normal(size=(30, 3)).astype(np.float32)
    order = np.random.default_rng(2).permutation(30)
    np.save(tmp_path / "l.npy", logits[order])
    (tmp_path / "ids.txt").write_text("\n".join(ids[i] for i in order))
    code, out, err = run(["import-logits", "--store", path, "--split", "test", "--name", "resnet",
                          tmp_path / "l.npy", "--ids", tmp_path / "ids.txt"], capsys)
    assert code == 0, err
    with FeatureStore(path) as r:
        stored, kind = r.logits("resnet", "test")
        assert r.logits_names() == ["resnet"]
    np.testing.assert_array_equal(stored, logits)
    assert kind == "logits"
    csv = tmp_path / "p.csv"
    csv.write_text("id,a,b,c\n" + "".join(f"{i},0.2,0.3,0.5\n" for i in reversed(ids)))
    code, _, err = run(["import-logits", "--store", path, "--split", "test", "--name", "p", "--probabilities", csv],
                       capsys)
    assert code == 0, err
    with FeatureStore(path) as r:
        assert r.logits("p", "test")[1] == "probabilities"


@pytest.mark.parametrize("case,message", [
    ("unknown", "not in split 'test'"),
    ("missing", "have no logits"),
    ("classes", "have 4 classes but split 'test' has 3"),
])
def test_import_logits_refuses_mismatches(ood_store, tmp_path, capsys, case, message):
    path, *_ = ood_store
    ids = default_ids("test", 30)
    width = 4 if case == "classes" else 3
    if case == "unknown":
        ids = ids + ["stranger"]
    if case == "missing":
        ids = ids[:-1]
    np.save(tmp_path / "l.npy", np.zeros((len(ids), width), dtype=np.float32))
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    code, out, err = run(["import-logits", "--store", path, "--split", "test", "--name", "r",
                          tmp_path / "l.npy", "--ids", tmp_path / "ids.txt"], capsys)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_ood_table_matches_sklearn(ood_store, tmp_path, capsys):
    path, X_id, X_ood, y, T = ood_store
    for split, X in (("test", X_id), ("other", X_ood)):
        np.save(tmp_path / f"{split}.npy", (X @ T.T).astype(np.float32))
        (tmp_path / f"{split}.txt").write_text("\n".join(default_ids(split, len(X))))
        assert run(["import-logits", "--store", path, "--split", split, "--name", "lin", tmp_path / f"{split}.npy",
                    "--ids", tmp_path / f"{split}.txt"], capsys)[0] == 0
    code, out, err = run(["ood", "--store", path, "--encoder", "test/enc", "--models", "zero-shot,logits:lin",
                          "--id-split", "test", "--ood-split", "other", "--json"], capsys)
    assert code == 0, err
    rows = {(r["model"], r["score"]): r for r in json.loads(out)}
    labels = np.r_[np.ones(30), np.zeros(20)]
    energy = np.r_[logsumexp(X_id @ T.T, axis=1), logsumexp(X_ood @ T.T, axis=1)]
    assert rows[("logits:lin", "energy")]["auroc"] == pytest.approx(roc_auc_score(labels, energy))
    assert {("cooked", "entropy"), ("zero-shot-cosine", "mcm"), ("zero-shot", "gen")} <= set(rows)
    # OpenOOD's columns, exactly: FPR@95 of roc_curve(OOD = 1, -score) at the first TPR >= 0.95,
    # AUPR by auc(recall, precision) of precision_recall_curve; printed x100 with 2 decimals.
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(1 - labels, -energy)
    p_in, r_in, _ = precision_recall_curve(labels, energy)
    p_out, r_out, _ = precision_recall_curve(1 - labels, -energy)
    openood = [fpr[np.argmax(tpr >= 0.95)], roc_auc_score(labels, energy), auc(r_in, p_in), auc(r_out, p_out)]
    row = rows[("logits:lin", "energy")]
    assert [row[k] for k in ("fpr95_ood", "auroc", "aupr_in_trapezoid", "aupr_out_trapezoid")] == \
        pytest.approx(openood, abs=1e-12)
    code, out, err = run(["ood", "--store", path, "--encoder", "test/enc", "--models", "logits:lin",
                          "--id-split", "test", "--ood-split", "other", "--columns", "openood"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["model", "score", "FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT"]
    printed = next(line.split() for line in lines if line.split()[:2] == ["logits:lin", "energy"])
    assert printed[2:] == [f"{100 * v:.2f}" for v in openood]
    assert "trapezoid" in lines[-1]


def test_ood_refuses_other_encoder_weights(ood_store, tmp_path, capsys):
    path, _, X_ood, *_ = ood_store
    other = make_feature_store(tmp_path / "o.h5", {"other": X_ood}, weights="different-weights")
    code, _, err = run(["ood", "--store", path, "--encoder", "test/enc", "--models", "zero-shot", "--id-split", "test",
                        "--ood-split", "other", "--ood-store", other], capsys)
    assert code == 2 and "weights" in err and "same encoder" in err


def test_schur_score_and_remove(ood_store, capsys):
    from solvers.schur_decomposition import schur_complement_entropy, text_to_image_map

    path, X_id, _, y, T = ood_store
    code, out, err = run(["schur", "score", "--store", path, "--encoder", "test/enc", "--split", "test",
                          "--bank", "test/simple", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["sce"] == pytest.approx(schur_complement_entropy(X_id, T[y]), rel=1e-5)
    code, out, err = run(["schur", "remove", "--store", path, "--encoder", "test/enc", "--split", "test",
                          "--bank", "test/simple", "--prompt", "b", "--method", "project"], capsys)
    assert code == 0, err
    key = "test/enc+schur-remove-b"
    with FeatureStore(path) as r:
        removed = r.features(key, "test")
        info = r.encoder_info(key)
    A = text_to_image_map(X_id, T[y])
    d = T[1] @ A
    np.testing.assert_allclose(removed @ (d / np.linalg.norm(d)), 0, atol=1e-5)
    assert info["source_encoder"] == "test/enc" and info["derivation"]["prompt"] == "b"


def test_retrieval_command_matches_metrics(ood_store, capsys):
    from solvers.metrics.retrieval import image_to_text_recall

    path, X_id, *_ = ood_store
    captions = X_id + np.random.default_rng(3).normal(scale=2.0, size=X_id.shape)
    with FeatureStore(path, mode="a") as w:
        w.put_text_bank("test/enc", "caps", captions.astype(np.float32), [f"c{i}" for i in range(30)])
    code, out, err = run(["retrieval", "--store", path, "--encoder", "test/enc", "--split", "test",
                          "--bank", "caps", "-k", "1", "-k", "5", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    expected = image_to_text_recall(X_id, captions, np.arange(30), (1, 5))
    assert result["image_to_text"]["5"] == pytest.approx(expected[5], abs=1e-6)

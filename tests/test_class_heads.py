"""A classifier head imported as a class bank (`fs text --weights`): the head's own logits
W x_raw + b against a hand computation on a store with recorded norms, and against what zero-shot
computes from the same bank (cosine to the rows of W, no b), which predicts other classes here."""
from __future__ import annotations

import json

import numpy as np
import pytest

from featurestore.errors import NotFoundError, SourceError
from featurestore.store.feature_store import FeatureStore
from featurestore.text.class_heads import head_logits, stored_head_logits
from tests.cli_runner import run

# Raw features (as the encoder gave them) and a head whose rows have unequal norms and a bias.
RAW = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])
W = np.array([[1.0, 0.0], [0.0, 3.0], [0.6, 0.8]])
B = np.array([0.5, -2.0, 1.0])
LABELS = [1, 2, 1, 0]  # the head's own predictions on the first three rows


def hand_logits():
    """Row by row: logits[i, k] = sum_d W[k, d] * raw[i, d] + b[k]."""
    return np.array([[sum(W[k, d] * row[d] for d in range(2)) + B[k] for k in range(3)] for row in RAW])


def write_store(path, invalid=()):
    norms = np.linalg.norm(RAW, axis=1)
    unit = (RAW / norms[:, None]).astype(np.float32)
    n = len(RAW)
    with FeatureStore(path, mode="a") as s:
        rows = s.add_rows("test", [f"r{i}" for i in range(n)], [f"r{i}.jpg" for i in range(n)], LABELS,
                          classes=["a", "b", "c"])
        s.ensure_encoder("e/h", {"model": "m", "weights": "w", "embed_dim": 2})
        s.prepare_features("e/h", "test", 2, norms=True)
        s.begin_appending()
        ok = np.array([i not in invalid for i in range(n)])
        s.write_features("e/h", "test", rows, unit * ok[:, None], ok, ["" if g else "bad" for g in ok],
                         norms=norms.astype(np.float32))
    return path


def test_head_logits_by_hand():
    norms = np.linalg.norm(RAW, axis=1)
    expected = hand_logits()
    assert expected[0].tolist() == [3.5, 10.0, 6.0]  # 3 + 0.5, 12 - 2, 1.8 + 3.2 + 1
    np.testing.assert_allclose(head_logits(RAW / norms[:, None], norms, W, B), expected, rtol=1e-12)
    np.testing.assert_allclose(head_logits(RAW / norms[:, None], norms, W), expected - B, rtol=1e-12)
    with pytest.raises(SourceError, match="3 columns"):
        head_logits(np.ones((2, 3)), np.ones(2), W)
    with pytest.raises(SourceError, match="must be \\(3,\\)"):
        head_logits(RAW, np.ones(4), W, B[:2])


def test_fs_text_weights_stores_the_heads_own_logits(tmp_path, capsys):
    store = write_store(tmp_path / "s.h5", invalid=(3,))
    np.savez(tmp_path / "head.npz", W=W, b=B)
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    args = ["text", "--store", store, "--weights", tmp_path / "head.npz", "--classes", tmp_path / "names.txt",
            "--name", "head"]
    code, out, err = run(args + ["--logits", "test"], capsys)
    assert code == 0, err
    assert "100 * cos(x, W_k) without b" in out and "logits:head" in out
    expected = hand_logits()
    with FeatureStore(store) as s:
        logits, kind = s.logits("head", "test")  # valid rows only: the last row did not decode
        np.testing.assert_allclose(stored_head_logits(s, "e/h", "head", "test"), expected[:3], rtol=1e-6)
        everything, _ = s.logits("head", "test", valid_only=False)
        unit = s.features("e/h", "test")
    assert kind == "logits"
    np.testing.assert_allclose(logits, expected[:3], rtol=1e-6)
    assert np.isnan(everything[3]).all()
    # What zero-shot computes from the same bank: cosine to W's rows, no b. Here it predicts
    # otherwise on row 0 (class 2, cos 1.0, where the head says class 1) and row 1.
    cosine = unit @ (W / np.linalg.norm(W, axis=1, keepdims=True)).T
    assert cosine.argmax(1).tolist() == [2, 0, 1] and expected[:3].argmax(1).tolist() == [1, 2, 1]
    code, out, err = run(["eval", "--store", store, "--models", "zero-shot", "--bank", "head", "--split", "test",
                          "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)[0]["top1"] == pytest.approx(1 / 3)  # the head itself: 3/3 on these rows
    assert (expected[:3].argmax(1) == LABELS[:3]).all()


def test_head_logits_need_the_norms(tmp_path, capsys):
    store = write_store(tmp_path / "s.h5")
    with FeatureStore(store, mode="a") as s:
        s.put_text_bank("e/h", "words", np.ones((2, 2), np.float32), ["x", "y"], kind="list")
    with FeatureStore(store) as s, pytest.raises(NotFoundError, match="not a class bank"):
        stored_head_logits(s, "e/h", "words", "test")
    np.save(tmp_path / "head.npy", W)
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    args = ["text", "--store", store, "--weights", tmp_path / "head.npy", "--classes", tmp_path / "names.txt"]
    code, _, err = run(args + ["--logits", "nope"], capsys)
    assert code == 2 and err.count("\n") == 1 and "no split 'nope'" in err
    code, _, err = run(["text", "--store", store, "--classes", "test", "--logits", "test"], capsys)
    assert code == 2 and "needs --weights" in err
    code, out, err = run(args + ["--logits", "test"], capsys)  # no b: b = 0
    assert code == 0, err
    with FeatureStore(store) as s:
        np.testing.assert_allclose(s.logits("head", "test")[0], hand_logits() - B, rtol=1e-6)

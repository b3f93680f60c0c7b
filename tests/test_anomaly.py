"""Anomaly detection: scores against hand computation (prototype softmax, nearest-normal
distance by a loop), AUROC / AUPR against brute-force pair counting and precision at each
positive, the prompt state lists, and fs anomaly end to end on the tiny model."""
import json

import numpy as np
import pytest

from featurestore.errors import SourceError
from featurestore.text.anomaly_prompts import compose_prompts, read_states
from solvers.errors import InputError
from solvers.ood.anomaly import PromptAnomalyDetector, anomaly_metrics
from tests.cli_runner import run


def unit(A):
    return A / np.linalg.norm(A, axis=-1, keepdims=True)


def test_scores_by_hand():
    normal = np.array([[1.0, 0.1, 0.0], [1.0, -0.1, 0.0]])
    anomalous = np.array([[0.0, 0.0, 2.0]])
    X = np.array([[1.0, 0.0, 0.2], [0.1, 0.0, 1.0], [3.0, 0.0, 3.0]])
    memory = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    det = PromptAnomalyDetector(normal, anomalous, logit_scale=10.0, memory_weight=0.25).fit(memory)
    t_n = unit(unit(normal).mean(0))  # = (1, 0, 0)
    np.testing.assert_allclose(t_n, [1, 0, 0], atol=1e-12)
    for i, x in enumerate(unit(X)):
        a, b = 10 * x @ t_n, 10 * x[2]
        zs = np.exp(b) / (np.exp(a) + np.exp(b))
        mem = (1 - max(x @ unit(m) for m in memory)) / 2
        assert det.zero_shot_scores(X)[i] == pytest.approx(zs)
        assert det.memory_scores(X)[i] == pytest.approx(mem)
        assert det.score_samples(X)[i] == pytest.approx(0.75 * zs + 0.25 * mem)
    assert np.array_equal(PromptAnomalyDetector(normal, anomalous).fit().score_samples(X),
                          PromptAnomalyDetector(normal, anomalous).fit().zero_shot_scores(X))


def test_winclip_logit_scale_and_blend_by_hand():
    """WinCLIP's scale 1/0.07 by default. t_n = (1, 0), t_a = (0, 1), x = (0.6, 0.8), one normal
    memory image (1, 0): zero-shot = 1 / (1 + exp((0.6 - 0.8) / 0.07)) = 0.945686..., memory =
    (1 - 0.6) / 2 = 0.2, WinCLIP+ = their mean = 0.572843... (with scale 100 it would be 0.6)."""
    import math

    det = PromptAnomalyDetector(np.array([[2.0, 0.0]]), np.array([[0.0, 0.5]])).fit(np.array([[3.0, 0.0]]))
    assert det.logit_scale == pytest.approx(1 / 0.07)
    zero_shot = 1 / (1 + math.exp(-0.2 / 0.07))
    assert zero_shot == pytest.approx(0.945686, abs=1e-6)
    x = np.array([[0.6, 0.8]])
    assert det.zero_shot_scores(x)[0] == pytest.approx(zero_shot, rel=1e-12)
    assert det.memory_scores(x)[0] == pytest.approx(0.2, rel=1e-12)
    assert det.score_samples(x)[0] == pytest.approx(0.572843, abs=1e-6)
    assert det.score_samples(x)[0] == pytest.approx((zero_shot + 0.2) / 2, rel=1e-12)
    clip_scale = PromptAnomalyDetector(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), logit_scale=100.0)
    assert clip_scale.fit(np.array([[1.0, 0.0]])).score_samples(x)[0] == pytest.approx(0.6, abs=1e-8)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="logit_scale"):
            PromptAnomalyDetector(np.eye(2)[:1], np.eye(2)[1:], logit_scale=bad).fit()


def test_metrics_brute_force():
    rng = np.random.default_rng(0)
    y = rng.random(60) < 0.4
    s = rng.random(60) + 0.3 * y
    pos, neg = s[y], s[~y]
    auroc = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    order = np.argsort(-s)
    hits = np.cumsum(y[order])
    aupr = np.mean([hits[k] / (k + 1) for k in range(len(s)) if y[order][k]])
    out = anomaly_metrics(y, s)
    assert out["auroc"] == pytest.approx(auroc) and out["aupr"] == pytest.approx(aupr)
    with pytest.raises(InputError, match="both normal and anomalous"):
        anomaly_metrics(np.zeros(4, bool), s[:4])


def test_state_lists(tmp_path):
    states = read_states()
    prompts = compose_prompts(states, "bottle")
    assert len(prompts["normal"]) == len(states["normal"]) * len(states["templates"])
    assert "a photo of a flawless bottle." in prompts["normal"]
    assert "a photo of a damaged bottle." in prompts["anomalous"]
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"normal": ["{}"], "anomalous": ["broken"], "templates": ["a {}."]}))
    with pytest.raises(SourceError, match="'broken'"):
        read_states(bad)


@pytest.fixture(scope="module")
def mvtec_like(tmp_path_factory, tiny_checkpoint):
    from cli.main import main
    from tests.conftest import TINY_CONFIG, TINY_MODEL
    from tests.images import write_class_tree

    root = tmp_path_factory.mktemp("anomaly")
    store = root / "s.h5"
    for split, classes, seed in (("train", {"good": 5}, 0), ("test", {"good": 4, "broken": 4}, 1)):
        write_class_tree(root / split, classes, seed=seed)
        main(["extract", str(root / split), "--store", str(store), "--model", TINY_MODEL, "--model-config",
              str(TINY_CONFIG), "--pretrained", str(tiny_checkpoint), "--workers", "0", "-q"])
    return store


@pytest.mark.slow
def test_fs_anomaly_end_to_end(mvtec_like, tiny_encoder, capsys):
    from featurestore.store.feature_store import FeatureStore

    store = mvtec_like
    args = ["anomaly", "--store", store, "--split", "test", "--object", "bottle", "--normal-split", "train",
            "--shots", "3", "-q"]
    code, out, err = run(args + ["--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    prompts = compose_prompts(read_states(), "bottle")
    with FeatureStore(store) as reader:
        key = reader.encoders()[0]
        X, y, classes = reader.features(key, "test"), reader.labels("test"), reader.classes("test")
        memory = reader.features(key, "train")
    memory = memory[np.sort(np.random.default_rng(0).choice(5, 3, replace=False))]
    det = PromptAnomalyDetector(tiny_encoder.encode_texts(prompts["normal"]),
                                tiny_encoder.encode_texts(prompts["anomalous"])).fit(memory)
    truth = y != classes.index("good")
    expected = anomaly_metrics(truth, det.score_samples(X))
    assert summary["results"]["combined"]["auroc"] == pytest.approx(expected["auroc"], abs=1e-6)
    assert summary["shots"] == 3 and summary["results"]["zero_shot"]["n_anomalous"] == 4
    code, out, _ = run(args, capsys)
    assert code == 0 and "image AUROC" in out and "3-shot normal memory" in out
    code, _, err = run(["anomaly", "--store", store, "--split", "test", "--object", "bottle",
                        "--normal-class", "ok", "-q"], capsys)
    assert code == 2 and "no class 'ok'" in err
    code, _, err = run(["anomaly", "--store", store, "--split", "test", "--object", "bottle", "--shots", "2"], capsys)
    assert code == 2 and "--normal-split" in err


def test_anomaly_inputs_ground_truth_and_memory(tmp_path):
    """workflows.anomaly on a store without a model: ground truth by class, memory rows by class
    (or every row of an unlabelled split), a seeded --shots sample, one-line refusals."""
    from featurestore.errors import NotFoundError
    from featurestore.store.feature_store import FeatureStore
    from tests.store_fixtures import make_feature_store
    from workflows.anomaly import anomaly_inputs

    rng = np.random.default_rng(0)
    feats = {"test": rng.standard_normal((6, 4)), "train": rng.standard_normal((5, 4)),
             "folder": rng.standard_normal((3, 4))}
    path = make_feature_store(tmp_path / "a.h5", feats,
                              labels={"test": [0, 1, 1, 0, 1, 0], "train": [1, 0, 1, 1, 0]},
                              classes={"test": ["broken", "good"], "train": ["broken", "good"]})
    with FeatureStore(path) as store:
        X, truth, memory, used = anomaly_inputs(store, "test/enc", "test", "good", "train")
        assert truth.tolist() == [True, False, False, True, False, True]
        np.testing.assert_allclose(memory, feats["train"][[0, 2, 3]].astype(np.float32))
        _, _, sample, used = anomaly_inputs(store, "test/enc", "test", "good", "train", shots=2, seed=4)
        rows = np.sort(np.random.default_rng(4).choice(3, 2, replace=False))
        np.testing.assert_allclose(sample, feats["train"][[0, 2, 3]][rows].astype(np.float32))
        assert used["shots"] == 2
        _, _, everything, _ = anomaly_inputs(store, "test/enc", "test", "good", "folder")
        assert len(everything) == 3  # an unlabelled folder of normal images is all memory
        for args, message in (((store, "test/enc", "test", "ok"), "no class 'ok'"),
                              ((store, "test/enc", "folder", "good"), "unlabelled"),
                              ((store, "test/enc", "test", "good", "test"), "memory would contain"),
                              ((store, "test/enc", "test", "good", "train", 9), "only 3 normal rows")):
            with pytest.raises(NotFoundError, match=message):
                anomaly_inputs(*args)

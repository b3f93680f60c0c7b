"""Description-based solvers against hand-computed cases: Menon & Vondrick's mean cosine and
explanations, FuDD's re-ranking and fallback, description selection, PerceptionCLIP's marginal."""
from __future__ import annotations

import json

import numpy as np
import pytest

from featurestore.errors import SourceError
from featurestore.text.contexts import context_prompts
from featurestore.text.descriptor_prompts import (
    class_descriptor_prompts,
    differential_prompts,
    read_class_descriptors,
    read_differential_descriptors,
)
from solvers.descriptions.description_selection import DescriptionSelection
from solvers.descriptions.descriptors import DescriptorClassifier
from solvers.descriptions.fudd import DifferentialDescriptions
from solvers.descriptions.perception_clip import PerceptionCLIP
from solvers.persistence import load_npz, save_npz

E = np.eye(4)
R2 = np.sqrt(2.0)


def unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


# ---------------------------------------------------------------- classification by description
def menon_solver():
    prompts = np.stack([E[0], unit(E[0] + E[1]), E[1], E[2]])
    return DescriptorClassifier(prompt_weights=prompts, prompt_classes=np.array([0, 0, 1, 1]),
                                descriptors=["is zero", "is zero-one", "is one", "is two"]).fit()


def test_descriptor_scores_are_mean_cosines():
    X = np.array([[2.0, 0, 0, 0], [0, 1.2, 1.6, 0]])  # second row has norm 2: cosines 0.6 and 0.8
    logits = menon_solver().class_logits(X)
    expected = 100 * np.array([[(1 + 1 / R2) / 2, 0.0],
                               [(0 + 0.6 / R2) / 2, (0.6 + 0.8) / 2]])
    np.testing.assert_allclose(logits, expected, atol=1e-9)


def test_explanations_name_the_best_descriptors(tmp_path):
    X = np.array([[2.0, 0, 0, 0], [0, 1.2, 1.6, 0]])
    solver = menon_solver()
    expl = solver.explain(X, top=2)
    assert [d for d, _ in expl[0]] == ["is zero", "is zero-one"]
    assert [d for d, _ in expl[1]] == ["is two", "is one"]
    np.testing.assert_allclose([s for _, s in expl[1]], [0.8, 0.6])
    save_npz(solver, tmp_path / "menon", encoder="enc")
    loaded = load_npz(tmp_path / "menon")
    assert loaded.explain(X, top=1) == [expl[0][:1], expl[1][:1]]


def test_descriptor_solver_rejects_bad_inputs():
    with pytest.raises(ValueError, match="class.*no descriptor prompt"):
        DescriptorClassifier(prompt_weights=E[:2], prompt_classes=np.array([0, 0]), n_classes=2).fit()
    with pytest.raises(ValueError, match="X has 3 features, but DescriptorClassifier is expecting 4 features"):
        menon_solver().decision_function(np.ones((1, 3)))
    with pytest.raises(ValueError, match="2 descriptor strings for 4 prompts"):
        DescriptorClassifier(prompt_weights=E, prompt_classes=np.array([0, 0, 1, 1]), descriptors=["a", "b"]).fit()


# ---------------------------------------------------------------- FuDD
T_FUDD = np.stack([E[0], unit([1, -0.2, 0, 0]), E[3]])
X_FUDD = np.array([unit([1, 0.3, 0, 0])])


def fudd(top_k, plain=True):
    # differential prompts: class 0 vs 1 -> e2, class 1 vs 0 -> e1 (no pair involves class 2)
    extra = {"prompt_weights": np.stack([E[0], E[1], E[3]]), "prompt_classes": np.array([0, 1, 2])} if plain else {}
    return DifferentialDescriptions(text_weights=T_FUDD, pair_weights=np.stack([E[2], E[1]]),
                                    pair_classes=np.array([0, 1]), pair_others=np.array([1, 0]),
                                    top_k=top_k, **extra).fit()


def test_fudd_reranks_an_ambiguous_pair():
    cos0, cos1 = 1 / np.linalg.norm([1, 0.3]), (1 - 0.06) / (np.linalg.norm([1, 0.3]) * np.linalg.norm([1, -0.2]))
    assert cos0 > cos1 > 0  # zero-shot says class 0
    solver = fudd(top_k=2)
    assert solver.ambiguous_classes(X_FUDD).tolist() == [[0, 1]]
    c1 = 0.3 / np.linalg.norm([1, 0.3])  # cos(x, e1): class 1's differential description
    np.testing.assert_allclose(solver.decision_function(X_FUDD), 100 * np.array([[0.0, c1, 0.0 - 2]]), atol=1e-9)
    assert solver.predict(X_FUDD).tolist() == [1]


def test_fudd_falls_back_to_plain_descriptors_where_a_pair_has_none():
    x_norm = np.linalg.norm([1, 0.3])
    c_e0, c_e1 = 1 / x_norm, 0.3 / x_norm
    # top-3: class 2 has no pair with 0 or 1, so every class also uses its plain descriptors
    expected = 100 * np.array([[(0.0 + c_e0) / 2, (c_e1 + c_e1) / 2, 0.0]])
    np.testing.assert_allclose(fudd(top_k=3).decision_function(X_FUDD), expected, atol=1e-9)
    # without a plain bank, the class text embedding stands in
    c_t1 = float(X_FUDD[0] @ T_FUDD[1])
    expected = 100 * np.array([[(0.0 + c_e0) / 2, (c_e1 + c_t1) / 2, 0.0]])
    np.testing.assert_allclose(fudd(top_k=3, plain=False).decision_function(X_FUDD), expected, atol=1e-9)


def test_fudd_needs_text_weights():
    with pytest.raises(ValueError, match="text weights"):
        DifferentialDescriptions(pair_weights=E[:2], pair_classes=np.array([0, 1]), pair_others=np.array([1, 0])).fit()


# ---------------------------------------------------------------- description selection
def test_selection_keeps_the_discriminative_descriptor():
    prompts = np.stack([E[0], E[2], E[1], E[3]])
    owners = np.array([0, 0, 1, 2])
    names = ["generic", "discriminative", "one", "three"]
    X = np.stack([unit(E[0] + E[2]), unit(E[0] + E[1]), E[3]])
    y = np.array([0, 1, 2])
    T = np.stack([E[0], unit(E[0] + E[1]), E[3]])  # class 1 is class 0's nearest neighbour
    solver = DescriptionSelection(prompt_weights=prompts, prompt_classes=owners, descriptors=names,
                                  text_weights=T, n_neighbors=1, n_select=1).fit(X, y)
    assert solver.neighbours()[0].tolist() == [1]
    # generic: own 1/sqrt2 - neighbour 1/sqrt2 = 0; discriminative: 1/sqrt2 - 0
    np.testing.assert_allclose(solver.prompt_scores_[:2], [0.0, 1 / R2], atol=1e-12)
    assert [names[k] for k in np.flatnonzero(solver.selected_ & (owners == 0))] == ["discriminative"]
    x = unit([1, 0.5, 0.2, 0])
    np.testing.assert_allclose(solver.decision_function(x[None]), 100 * np.array([[x[2], x[1], x[3]]]), atol=1e-12)
    assert solver.explain(X[:1], top=3) == [[("discriminative", pytest.approx(1 / R2))]]


def test_selection_size_is_chosen_on_validation_only():
    prompts = np.stack([E[0], E[2], E[1], E[3]])
    owners = np.array([0, 0, 1, 2])
    X = np.stack([unit(E[0] + E[2]), unit(E[0] + E[1]), E[3]])
    y = np.array([0, 1, 2])
    # a class-0 validation image near e0, barely along e2
    Xv = np.stack([unit([1, 0.4, 0.05, 0])])
    yv = np.array([0])
    one = DescriptionSelection(prompt_weights=prompts, prompt_classes=owners, n_select_grid=(1, 2),
                               n_neighbors=1).fit(X, y, Xv, yv)
    # by hand (|v| cancels): n=1 keeps e2 for class 0: 0.05 < class 1's 0.4; n=2: (1 + 0.05) / 2 > 0.4
    assert one.n_select_ == 2
    assert DescriptionSelection(prompt_weights=prompts, prompt_classes=owners, n_neighbors=1,
                                default_n_select=1).fit(X, y).n_select_ == 1


# ---------------------------------------------------------------- PerceptionCLIP
def hand_marginal(X, E3, scale, tau, mode, Ez=None):
    out = []
    for x in X:
        x = x / np.linalg.norm(x)
        C, Z, _ = E3.shape
        f = np.array([[scale * x @ (E3[c, z] / np.linalg.norm(E3[c, z])) for z in range(Z)] for c in range(C)])
        if mode == "with_class":
            w = np.array([sum(np.exp(f[c, z] / tau) for c in range(C)) for z in range(Z)])
        elif mode == "without_class":
            w = np.array([np.exp(scale * x @ (Ez[z] / np.linalg.norm(Ez[z])) / tau) for z in range(Z)])
        else:
            w = np.ones(Z)
        pz = w / w.sum()
        py = [sum(np.exp(f[c, z]) / sum(np.exp(f[k, z]) for k in range(C)) * pz[z] for z in range(Z))
              for c in range(C)]
        out.append(py)
    return np.array(out)


@pytest.mark.parametrize("mode", ["with_class", "without_class", "uniform"])
def test_perceptionclip_equals_the_marginal_by_hand(mode):
    rng = np.random.default_rng(0)
    E3, Ez, X = rng.normal(size=(3, 2, 5)), rng.normal(size=(2, 5)), rng.normal(size=(4, 5))
    solver = PerceptionCLIP(prompt_weights=E3, context_weights=Ez, contexts=["a", "b"], infer=mode,
                            context_temperature=2.0, logit_scale=10.0).fit()
    np.testing.assert_allclose(solver.predict_proba(X), hand_marginal(X, E3, 10.0, 2.0, mode, Ez), atol=1e-10)
    expl = solver.explain(X, top=2)
    for x, row in zip(X, expl):  # p(z | x) by hand, as in hand_marginal; most probable first
        x = x / np.linalg.norm(x)
        f = np.array([[10.0 * x @ (E3[c, z] / np.linalg.norm(E3[c, z])) for z in range(2)] for c in range(3)])
        if mode == "with_class":
            w = np.exp(f / 2.0).sum(axis=0)
        elif mode == "without_class":
            w = np.exp(10.0 * (Ez / np.linalg.norm(Ez, axis=1, keepdims=True)) @ x / 2.0)
        else:
            w = np.ones(2)
        pz = w / w.sum()
        order = np.argsort(-pz, kind="stable")
        assert [name for name, _ in row] == [["a", "b"][z] for z in order]
        np.testing.assert_allclose([p for _, p in row], pz[order], atol=1e-10)


def test_perceptionclip_calibrated_temperature_survives_saving(tmp_path):
    from solvers.model_selection.temperature_scaling import calibrate

    rng = np.random.default_rng(1)
    E3, X, y = rng.normal(size=(3, 2, 6)), rng.normal(size=(40, 6)), rng.integers(0, 3, 40)
    solver = calibrate(PerceptionCLIP(prompt_weights=E3).fit(), X, y)
    assert solver.temperature != pytest.approx(1.0)
    save_npz(solver, tmp_path / "pc")
    loaded = load_npz(tmp_path / "pc")
    assert loaded.temperature == pytest.approx(solver.temperature)
    z = np.log(hand_marginal(X, E3, 100.0, 1.0, "with_class")) / solver.temperature
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-8)


def test_perceptionclip_rejects_bad_inputs():
    with pytest.raises(ValueError, match="context_weights"):
        PerceptionCLIP(prompt_weights=np.ones((2, 2, 3)), infer="without_class").fit()
    with pytest.raises(ValueError, match="infer must be"):
        PerceptionCLIP(prompt_weights=np.ones((2, 2, 3)), infer="guess").fit()


# ---------------------------------------------------------------- descriptor files
def write(tmp_path, data, name="d.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_descriptor_files_build_prompts(tmp_path):
    classes = ["cat", "dog"]
    desc = read_class_descriptors(write(tmp_path, {"dog": ["barks"], "cat": ["purrs", "has whiskers"]}), classes)
    prompts = class_descriptor_prompts(desc, classes)
    assert prompts.strings == ["cat, which purrs", "cat, which has whiskers", "dog, which barks"]
    assert prompts.extras["groups"] == ["cat", "cat", "dog"]
    assert prompts.extras["prompt_classes"].tolist() == [0, 0, 1]
    pairs = read_differential_descriptors(write(tmp_path, {"cat|dog": {"dog": ["is big"], "cat": ["is small"]}}),
                                          classes)
    diff = differential_prompts(pairs, classes)
    assert sorted(zip(diff.strings, diff.extras["prompt_others"].tolist())) == [
        ("cat, which is small", 1), ("dog, which is big", 0)]
    ctx, free = context_prompts({"bg": ["on grass", "indoors"], "o": ["upright"]}, classes)
    assert ctx.strings[:2] == ["a photo of a cat, on grass, upright", "a photo of a cat, indoors, upright"]
    assert free == ["a photo of a object, on grass, upright", "a photo of a object, indoors, upright"]


@pytest.mark.parametrize("data, message", [
    ({"cat": ["purrs"], "cow": ["moos"], "dog": ["barks"]}, "unknown class.*'cow'"),
    ({"cat": [], "dog": ["barks"]}, "empty list"),
    ({"cat": ["purrs"]}, "no descriptors for class.*'dog'"),
    ({"cat": "purrs", "dog": ["barks"]}, "list of strings"),
])
def test_bad_descriptor_files_are_clear_errors(tmp_path, data, message):
    with pytest.raises(SourceError, match=message):
        read_class_descriptors(write(tmp_path, data), ["cat", "dog"])


def test_bad_pair_files_are_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="exactly two classes"):
        read_differential_descriptors(write(tmp_path, {"cat|dog": {"cat": ["x"]}}), ["cat", "dog"])
    with pytest.raises(SourceError, match="empty list"):
        read_differential_descriptors(write(tmp_path, {"cat|dog": {"cat": ["x"], "dog": []}}), ["cat", "dog"])

"""REAL-Linear and REAL-Prompt (Parashar et al., CVPR 2024) on hand-made stores and embeddings."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore
from solvers.support_sets.balanced_retrieval import balanced_rows
from solvers.support_sets.real_linear import RealLinear
from solvers.support_sets.real_prompt import RealPrompt
from tests.store_fixtures import make_feature_store
from workflows.inputs.arrays import solver_arrays

CLASSES = ["cat", "dog", "emu"]
CAPTIONS = ["a Kitty on a sofa", "my dog", "DOG-park", "an emu", "a cat and a dog", "nothing",
            "hot dog", "kitty, kitty!", "a puppy", "sea", "the Dromaius walks", "cat"]
SYNONYMS = {"cat": ["kitty"], "dog": ["puppy", "hot dog"], "emu": ["dromaius"]}


def mentions(caption, phrase):
    words = re.findall(r"\w+", phrase.lower())
    return re.search(r"(?<!\w)" + r"\W+".join(map(re.escape, words)) + r"(?!\w)", caption, re.IGNORECASE) is not None


def expected_matches():
    """Brute force: caption rows per class (class name included), ambiguous rows dropped."""
    per_class = [{i for i, c in enumerate(CAPTIONS) if any(mentions(c, s) for s in [name] + SYNONYMS[name])}
                 for name in CLASSES]
    counts = {}
    for rows in per_class:
        for r in rows:
            counts[r] = counts.get(r, 0) + 1
    return [{r for r in rows if counts[r] == 1} for rows in per_class]


@pytest.fixture
def real_store(tmp_path):
    """A store: pool with captions (hand-made features), a REAL-Prompt bank, synonyms file."""
    rng = np.random.default_rng(0)
    D = 6
    pool = rng.standard_normal((len(CAPTIONS), D)).astype(np.float32)
    path = tmp_path / "s.h5"
    with FeatureStore(path, mode="a") as w:
        w.add_rows("pool", [f"p{i}" for i in range(len(CAPTIONS))], [f"p{i}.jpg" for i in range(len(CAPTIONS))],
                   [-1] * len(CAPTIONS), captions=CAPTIONS)
    make_feature_store(path, {"pool": pool, "plain": pool[:4]}, ids={"pool": [f"p{i}" for i in range(len(CAPTIONS))]})
    make_feature_store(path, {"alien": pool[:4]}, encoder="other/enc")
    T = np.eye(3, D, dtype=np.float32)
    per_template = np.stack([T, T + 0.1], axis=1)
    with FeatureStore(path, mode="a") as w:
        w.put_text_bank("test/enc", "c/real", T, ["x"] * 6, kind="real-prompt", classes=CLASSES,
                        names=CLASSES, templates=["a", "b"], per_template=per_template)
    syn = tmp_path / "syn.json"
    syn.write_text(json.dumps(SYNONYMS))
    return path, pool, T, syn


def test_balanced_rows_caps_each_class_and_drops_ambiguous():
    rows = np.array([0, 1, 2, 3, 4, 5, 5, 6, 7])
    classes = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    pos, lab = balanced_rows(rows, classes, 3, cap=2, seed=4)
    assert lab.tolist() == [0, 0, 1, 2, 2]
    assert set(pos[lab == 0]) <= {0, 1, 2, 3} and pos[lab == 1].tolist() == [4]
    assert pos[lab == 2].tolist() == [6, 7]
    again, _ = balanced_rows(rows, classes, 3, cap=2, seed=4)
    assert again.tolist() == pos.tolist()


def test_real_linear_retrieves_exactly_the_matching_rows(real_store):
    path, pool, T, syn = real_store
    with FeatureStore(path) as reader:
        inputs, _ = solver_arrays("real-linear", reader, "test/enc",
                                  {"pool": "pool", "synonyms": str(syn), "cap": 100}, None)
    expected = expected_matches()
    for c in range(3):
        got = inputs["retrieved_features"][inputs["retrieved_labels"] == c]
        want = pool[sorted(expected[c])]
        np.testing.assert_allclose(got, want)
    with FeatureStore(path) as reader:
        capped, _ = solver_arrays("real-linear", reader, "test/enc",
                                  {"pool": "pool", "synonyms": str(syn), "cap": 1}, None)
    assert np.bincount(capped["retrieved_labels"], minlength=3).tolist() == [min(1, len(e)) for e in expected]
    assert inputs["prompt_features"].shape == (6, T.shape[1])


def _penalised_multinomial(X, y, C, n_classes):
    """argmin_W C sum_i CE(x_i W^T, y_i) + 1/2 ||W||^2 (no bias), by SciPy's L-BFGS from zero."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    onehot = np.eye(n_classes)[y]

    def objective(w):
        W = w.reshape(n_classes, X.shape[1])
        Z = X @ W.T
        lse = logsumexp(Z, axis=1)
        P = np.exp(Z - lse[:, None])
        value = C * np.sum(lse - np.sum(Z * onehot, axis=1)) + 0.5 * np.sum(W * W)
        return value, (C * (P - onehot).T @ X + W).ravel()

    result = minimize(objective, np.zeros(n_classes * X.shape[1]), jac=True, method="L-BFGS-B",
                      options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 10000})
    return result.x.reshape(n_classes, X.shape[1])


def test_real_linear_is_zero_shot_at_alpha_zero_and_its_penalised_fit_elsewhere():
    """Overlapping classes: the head is the unique minimiser of the documented objective over
    the retrieved rows and the prompt rows (re-derived with SciPy), mixed with zero-shot by
    wise_alpha; checked on held-out rows, where it errs."""
    rng = np.random.default_rng(1)
    centres = np.eye(3, 5) * 1.5
    T = np.eye(3, 5)[[1, 2, 0]] + 0.2  # a wrong zero-shot head
    y = np.repeat(np.arange(3), 20)
    X = centres[y] + rng.standard_normal((60, 5))
    prompts, prompt_labels = centres + 0.5 * rng.standard_normal((3, 5)), np.arange(3)
    y_test = rng.integers(0, 3, 400)
    X_test = centres[y_test] + rng.standard_normal((400, 5))
    unit_test = X_test / np.linalg.norm(X_test, axis=1, keepdims=True)
    zero_shot = 100 * unit_test @ (T / np.linalg.norm(T, axis=1, keepdims=True)).T
    zs = RealLinear(text_weights=T, retrieved_features=X, retrieved_labels=y, wise_alpha=0.0).fit()
    np.testing.assert_allclose(zs.decision_function(X_test), zero_shot, rtol=1e-6)
    rows = np.vstack([X, prompts])
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    W = _penalised_multinomial(rows, np.concatenate([y, prompt_labels]), 1.0, 3)
    for alpha in (1.0, 0.3):
        model = RealLinear(text_weights=T, retrieved_features=X, retrieved_labels=y, prompt_features=prompts,
                           prompt_labels=prompt_labels, wise_alpha=alpha, C=1.0).fit()
        np.testing.assert_allclose(model.coef_, W, rtol=1e-4, atol=1e-4)
        expected = (1 - alpha) * zero_shot + alpha * unit_test @ W.T
        np.testing.assert_allclose(model.decision_function(X_test), expected, rtol=1e-4, atol=1e-3)
        assert np.array_equal(model.predict(X_test), expected.argmax(1))
    assert 0.5 < np.mean((unit_test @ W.T).argmax(1) == y_test) < 0.95  # held-out rows overlap: errors occur


def test_real_prompt_reads_the_real_bank(real_store):
    path, pool, T, _ = real_store
    with FeatureStore(path) as reader:
        inputs, used = solver_arrays("real-prompt", reader, "test/enc", {}, None)
    assert used["real_bank"] == "c/real"
    solver = RealPrompt(**inputs).fit()
    expected = 100 * (pool / np.linalg.norm(pool, axis=1, keepdims=True)) @ T.T
    np.testing.assert_allclose(solver.decision_function(pool), expected, rtol=1e-5)


@pytest.mark.parametrize("params, message", [
    ({"pool": "plain", "synonyms": "SYN"}, "has no captions"),
    ({"pool": "alien", "synonyms": "SYN"}, "encoded by 'other/enc'"),
    ({"pool": "pool"}, "give --input synonyms"),
    ({}, "needs a retrieval pool"),
    ({"pool": "pool", "synonyms": "SYN", "retrieval": "magic"}, "retrieval must be"),
])
def test_bad_pools_are_user_errors(real_store, params, message):
    from featurestore.errors import FeatureStoreError
    from solvers.errors import InputError

    path, _, _, syn = real_store
    params = {k: (str(syn) if v == "SYN" else v) for k, v in params.items()}
    with FeatureStore(path) as reader, pytest.raises((FeatureStoreError, InputError), match=re.escape(message)):
        solver_arrays("real-linear", reader, "test/enc", params, None)

"""Tip-Adapter against its formula on a hand-made cache, and its search against a brute force."""
import math

import numpy as np

from solvers.tip_adapter import TipAdapter, linear_grid


def test_hand_made_cache():
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    labels = np.array([0, 1, 1])
    text = np.array([[1.0, 0.0], [0.0, 1.0]])
    x = np.array([[0.8, 0.6]])
    model = TipAdapter(text_weights=text, alpha=0.5, beta=2.0).fit(keys, labels)
    # affinities x.F = 0.8, 0.6, 0.96; A = exp(-2 (1 - a))
    cache0 = math.exp(-2 * 0.2)
    cache1 = math.exp(-2 * 0.4) + math.exp(-2 * 0.04)
    expected = np.array([[80 + 0.5 * cache0, 60 + 0.5 * cache1]])
    np.testing.assert_allclose(model.decision_function(x), expected, rtol=1e-12)
    no_text = TipAdapter(alpha=0.5, beta=2.0).fit(keys, labels)
    np.testing.assert_allclose(no_text.decision_function(x), [[0.5 * cache0, 0.5 * cache1]], rtol=1e-12)


def test_defaults_without_validation_are_the_papers_init():
    keys = np.eye(3)
    model = TipAdapter(text_weights=np.eye(3)).fit(keys, np.arange(3))
    assert (model.alpha_, model.beta_) == (1.0, 1.0)


def test_official_grid():
    assert linear_grid(7, 200)[:2] == [0.1, 0.1 + 6.9 / 200]
    assert len(linear_grid(3, 20)) == 20


def test_search_equals_brute_force_on_validation():
    rng = np.random.default_rng(0)
    C, D = 4, 8
    centres = rng.standard_normal((C, D))
    T = centres + 1.2 * rng.standard_normal((C, D))
    y = np.repeat(np.arange(C), 4)
    X = centres[y] + rng.standard_normal((y.size, D))
    y_val = rng.integers(0, C, 80)
    X_val = centres[y_val] + rng.standard_normal((80, D))
    model = TipAdapter(text_weights=T, search_steps=(15, 6)).fit(X, y, X_val, y_val)
    F = X / np.linalg.norm(X, axis=1, keepdims=True)
    xv = X_val / np.linalg.norm(X_val, axis=1, keepdims=True)
    Tn = T / np.linalg.norm(T, axis=1, keepdims=True)
    best = (-1, None, None)
    for beta in [0.1 + i * 6.9 / 15 for i in range(15)]:
        for alpha in [0.1 + i * 2.9 / 6 for i in range(6)]:
            logits = 100 * xv @ Tn.T + alpha * np.exp(-beta * (1 - xv @ F.T)) @ np.eye(C)[y]
            acc = np.mean(logits.argmax(1) == y_val)
            if acc > best[0]:
                best = (acc, alpha, beta)
    assert model.val_accuracy_ == best[0]
    assert np.isclose(model.alpha_, best[1]) and np.isclose(model.beta_, best[2])



def test_search_reports_progress_and_quiet_silences_it(monkeypatch):
    import solvers.tip_adapter as module
    from solvers.progress import progress, quiet

    items = [1, 2]
    assert progress(items, "x") is not items  # a tqdm bar (hidden when not on a terminal)
    with quiet():
        assert progress(items, "x") is items
    assert progress(items, "x") is not items

    seen = []
    monkeypatch.setattr(module, "progress", lambda grid, desc, total=None: seen.append(desc) or grid)
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(30, 6)), np.arange(30) % 3
    TipAdapter(text_weights=rng.normal(size=(3, 6)), search_steps=(3, 2)).fit(X, y, X_val=X, y_val=y)
    assert seen == ["Tip-Adapter search"]

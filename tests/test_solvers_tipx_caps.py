"""TIP-X (SuS-X, ICCV 2023) and CapS-Adapter against NumPy formulas written here."""
from __future__ import annotations

import numpy as np
import pytest

from solvers.support_sets.caps_adapter import CapSAdapter, caption_support_positions
from solvers.support_sets.tip_x import TipX


def unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def problem(seed=0, C=3, k=4, D=8, n=30):
    rng = np.random.default_rng(seed)
    T = unit(rng.standard_normal((C, D)))
    F = unit(T[np.repeat(np.arange(C), k)] + 0.5 * rng.standard_normal((C * k, D)))
    yF = np.repeat(np.arange(C), k)
    y = rng.integers(0, C, n)
    X = unit(T[y] + 0.6 * rng.standard_normal((n, D)))
    return T, F, yF, X, y


def oracle_kl(X, F, T, tau):
    """KL(p(x) || p(f)) by explicit loops over pairs."""
    def dist(v):
        z = np.exp(v @ T.T / tau)
        return z / z.sum()
    out = np.zeros((len(X), len(F)))
    for i, x in enumerate(X):
        p = dist(x)
        for j, f in enumerate(F):
            q = dist(f)
            out[i, j] = sum(pi * np.log(pi / qi) for pi, qi in zip(p, q))
    return out


def test_tipx_logits_match_the_formula():
    T, F, yF, X, _ = problem()
    solver = TipX(text_weights=T, support_features=F, support_labels=yF, alpha=0.7, beta=3.0, gamma=2.0).fit()
    kl_ref = oracle_kl(F, F, T, 0.5)
    aff_ref = F @ F.T
    kl = oracle_kl(X, F, T, 0.5)
    scaled = (kl - kl_ref.min()) / (kl_ref.max() - kl_ref.min()) * (aff_ref.max() - aff_ref.min()) + aff_ref.min()
    onehot = np.eye(3)[yF]
    expected = 100 * X @ T.T + 0.7 * np.exp(-3.0 * (1 - X @ F.T)) @ onehot + 2.0 * (-scaled) @ onehot
    np.testing.assert_allclose(solver.decision_function(X), expected, rtol=1e-5, atol=1e-6)


def test_tipx_search_uses_validation_only():
    T, F, yF, X, y = problem(1)
    Xv, yv = X[:15], y[:15]
    steps = (3, 4, 3)
    solver = TipX(text_weights=T, support_features=F, support_labels=yF, search_steps=steps).fit(X_val=Xv, y_val=yv)
    best = -1
    for a in [0.1 + i * (50 - 0.1) / 3 for i in range(3)]:
        for b in [1 + i * (50 - 1) / 4 for i in range(4)]:
            for g in [0.1 + i * (30 - 0.1) / 3 for i in range(3)]:
                acc = np.mean(TipX(text_weights=T, support_features=F, support_labels=yF, alpha=a, beta=b, gamma=g)
                              .fit(X_val=Xv, y_val=yv).predict(Xv) == yv)
                best = max(best, acc)
    assert solver.val_accuracy_ == pytest.approx(best)
    assert np.mean(solver.predict(Xv) == yv) == pytest.approx(best)


def test_caps_affinity_mixes_image_and_caption_keys():
    T, F, yF, X, _ = problem(2)
    rng = np.random.default_rng(5)
    Fc = unit(F + 0.3 * rng.standard_normal(F.shape))
    solver = CapSAdapter(text_weights=T, support_features=F, support_labels=yF, support_caption_features=Fc,
                         alpha=1.5, beta=2.0, gamma=0.5, delta=0.3).fit()
    aff = 0.7 * X @ F.T + 0.3 * X @ Fc.T
    aff_ref = 0.7 * F @ F.T + 0.3 * F @ Fc.T
    kl_ref, kl = oracle_kl(F, F, T, 0.5), oracle_kl(X, F, T, 0.5)
    scaled = (kl - kl_ref.min()) / (kl_ref.max() - kl_ref.min()) * (aff_ref.max() - aff_ref.min()) + aff_ref.min()
    onehot = np.eye(3)[yF]
    expected = 100 * X @ T.T + 1.5 * np.exp(-2.0 * (1 - aff)) @ onehot + 0.5 * (-scaled) @ onehot
    np.testing.assert_allclose(solver.decision_function(X), expected, rtol=1e-5, atol=1e-6)


def test_caption_support_positions_pick_nearest_captions():
    pool = np.eye(6)[[0, 1, 2, 0, 1, 2]] + 0.01 * np.arange(6)[:, None]
    class_caps = np.eye(6)[[0, 0, 2]]
    positions = caption_support_positions(pool, class_caps, np.array([0, 0, 1]), 2, 2)
    assert sorted(positions[0].tolist()) == [0, 3] and sorted(positions[1].tolist()) == [2, 5]


@pytest.mark.parametrize("kwargs, message", [
    ({"support_labels": np.zeros(12, int)}, "have no support row"),
    ({"support_features": np.ones((12, 5))}, "features but"),
])
def test_bad_support_sets_are_value_errors(kwargs, message):
    T, F, yF, _, _ = problem()
    args = {"text_weights": T, "support_features": F, "support_labels": yF, **kwargs}
    with pytest.raises(ValueError, match=message):
        TipX(**args).fit()

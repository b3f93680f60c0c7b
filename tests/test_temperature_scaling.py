"""Temperature scaling: fitted T matches a brute-force grid minimum of the validation NLL."""
from __future__ import annotations

import numpy as np
import pytest

from solvers.metrics.classification import nll
from solvers.model_selection.temperature_scaling import calibrate, fit_temperature
from solvers.zero_shot.zero_shot import ZeroShot


def _nll_brute(z, y, t):
    z = z / t
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -np.mean(log_p[np.arange(len(y)), y])


def test_matches_grid_minimum_and_lowers_nll():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    z = rng.normal(size=(400, 4)) * 2
    z[np.arange(400), y] += 1.5
    z *= 5  # over-confident
    t = fit_temperature(z, y)
    grid = np.exp(np.linspace(-4, 4, 80001))
    brute = grid[np.argmin([_nll_brute(z, y, g) for g in grid[::10]]) * 10]
    fine = grid[max(0, np.searchsorted(grid, brute) - 20): np.searchsorted(grid, brute) + 20]
    brute = fine[np.argmin([_nll_brute(z, y, g) for g in fine])]
    assert t == pytest.approx(brute, rel=1e-3)
    assert _nll_brute(z, y, t) < _nll_brute(z, y, 1.0)


def test_calibrate_sets_solver_temperature():
    rng = np.random.default_rng(1)
    T = rng.normal(size=(3, 8))
    X = rng.normal(size=(60, 8))
    y = np.argmax(X @ T.T + rng.normal(scale=2, size=(60, 3)), axis=1)
    solver = ZeroShot(text_weights=T).fit()
    before = nll(y, solver.predict_proba(X))
    calibrate(solver, X, y)
    assert solver.temperature != 1.0 and nll(y, solver.predict_proba(X)) < before


def test_calibrate_reaches_knn_through_its_log_vote_share_logits():
    from solvers import softmax
    from solvers.few_shot.knn import KNN
    from solvers.model_selection.temperature_scaling import calibrate

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 4)), np.arange(20) % 2
    model = calibrate(KNN(k=3).fit(X, y), X, y)
    assert model.temperature != 1.0
    np.testing.assert_allclose(model.predict_proba(X), softmax(model.class_logits(X) / model.temperature))

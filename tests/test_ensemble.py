"""Ensembles: one member equals the member; weights are searched on validation only; saved and
loaded with nested member state; COOkeD equals its formula on a hand-made three-member case."""
from __future__ import annotations

import numpy as np
import pytest

from solvers.ensembles.cooked import cooked_ensemble, cooked_score
from solvers.ensembles.ensemble import Ensemble, simplex_grid
from solvers.ensembles.fixed_logits import FixedLogits
from solvers.few_shot.linear_probe import LinearProbe
from solvers.persistence import load_npz, save_npz
from solvers.zero_shot.zero_shot import ZeroShot


def _data(seed=0, n=90, d=6, c=3):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(c, d)) * 2
    y = np.repeat(np.arange(c), n // c)
    X = means[y] + rng.normal(size=(len(y), d))
    return X, y, means


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_one_member_equals_member():
    X, y, T = _data()
    zs = ZeroShot(text_weights=T).fit()
    for combine in ("proba", "logits"):
        ens = Ensemble(members=[zs], combine=combine).fit(X_val=X, y_val=y)
        np.testing.assert_allclose(ens.predict_proba(X), zs.predict_proba(X), atol=1e-9)
        np.testing.assert_array_equal(ens.predict(X), zs.predict(X))


def test_weights_searched_on_validation_only():
    X, y, T = _data(1)
    Xv, yv, _ = _data(2)
    zs = ZeroShot(text_weights=np.eye(3, 6)).fit()
    lp = LinearProbe(C=1.0).fit(X, y)
    ens = Ensemble(members=[zs, lp]).fit(X_val=Xv, y_val=yv)
    weights = ens.weights_.copy()
    assert weights.sum() == pytest.approx(1.0)
    refit = Ensemble(members=[zs, lp]).fit(X_val=Xv, y_val=yv)
    np.testing.assert_array_equal(refit.weights_, weights)
    # the chosen weights are the grid point with the best validation accuracy, found by brute force
    grid = simplex_grid(2, 0.1)
    p_members = [_softmax(zs.decision_function(Xv)), _softmax(lp.decision_function(Xv))]
    accs = [np.mean((w[0] * p_members[0] + w[1] * p_members[1]).argmax(1) == yv) for w in grid]
    assert np.mean(ens.predict(Xv) == yv) == pytest.approx(max(accs))


def _brute_force_weights(member_logits, labels, temperatures, step=0.1):
    """The simplex-grid weights with the best accuracy on ``labels`` (ties: higher mean log-likelihood)."""
    best, best_key = None, None
    for w in simplex_grid(len(member_logits), step):
        p = sum(wm * _softmax(z / t) for wm, z, t in zip(w, member_logits, temperatures))
        key = (np.mean(p.argmax(1) == labels), np.mean(np.log(p[np.arange(len(labels)), labels])))
        if best_key is None or key > best_key:
            best, best_key = w, key
    return best


def test_choice_follows_validation_labels_and_not_test_labels():
    """Temperatures and weights are the validation optimum (dense-grid NLL and brute-force grid
    search as oracles); the test labels, which would choose other weights, never enter the fit."""
    from scipy.special import log_softmax

    rng = np.random.default_rng(6)
    means = rng.normal(size=(4, 8))

    def draw(n):
        labels = np.repeat(np.arange(4), n // 4)
        return means[labels] + rng.normal(size=(n, 8)), labels

    X, y = draw(16)
    Xv, yv = draw(120)
    Xt, yt = draw(120)
    text = means + rng.normal(size=means.shape)  # a noisy zero-shot head and a 4-shot probe: both err
    zs = ZeroShot(text_weights=text).fit()
    lp = LinearProbe(C=0.1).fit(X, y)
    ens = Ensemble(members=[zs, lp], temperatures="fit").fit(X_val=Xv, y_val=yv)
    assert 0 < ens.weights_[0] < 1  # an interior optimum: neither member alone
    val_logits = [zs.decision_function(Xv), lp.decision_function(Xv)]
    log_t = np.linspace(-4, 4, 16001)
    for z, t in zip(val_logits, ens.temperatures_):
        nll = [-np.mean(log_softmax(z / np.exp(a), axis=1)[np.arange(len(yv)), yv]) for a in log_t]
        assert np.log(t) == pytest.approx(log_t[int(np.argmin(nll))], abs=2e-3)
    np.testing.assert_array_equal(ens.weights_, _brute_force_weights(val_logits, yv, ens.temperatures_))
    test_logits = [zs.decision_function(Xt), lp.decision_function(Xt)]
    on_test = _brute_force_weights(test_logits, yt, ens.temperatures_)
    assert not np.array_equal(on_test, ens.weights_)  # a fit that had read the test labels would be caught
    # the fitted ensemble's test predictions are its members' mixture at the validation choice
    mixture = sum(w * _softmax(z / t) for w, z, t in zip(ens.weights_, test_logits, ens.temperatures_))
    np.testing.assert_allclose(ens.predict_proba(Xt), mixture, atol=1e-12)


def test_proba_and_logit_combination_formulas():
    rng = np.random.default_rng(7)
    z1, z2 = rng.normal(size=(10, 4)), rng.normal(size=(10, 4)) * 3
    ens = Ensemble(combine="proba", weights=[1, 3], temperatures=[2.0, 0.5]).fit_logits([z1, z2])
    expected = 0.25 * _softmax(z1 / 2) + 0.75 * _softmax(z2 / 0.5)
    np.testing.assert_allclose(_softmax(ens.combine_logits([z1, z2])), expected, atol=1e-12)
    ens = Ensemble(combine="logits", weights=[1, 1], temperatures=[1.0, 2.0]).fit_logits([z1, z2])
    np.testing.assert_allclose(ens.combine_logits([z1, z2]), 0.5 * z1 + 0.25 * z2)


def test_save_load_nested_members(tmp_path):
    X, y, T = _data(8)
    zs = ZeroShot(text_weights=T).fit()
    lp = LinearProbe(C=1.0).fit(X, y)
    ens = Ensemble(members=[zs, lp], temperatures="fit").fit(X_val=X, y_val=y)
    save_npz(ens, tmp_path / "ens", encoder="enc")
    back = load_npz(tmp_path / "ens")
    assert type(back) is Ensemble and back.encoder_ == "enc"
    np.testing.assert_allclose(back.predict_proba(X), ens.predict_proba(X))


def test_cooked_hand_made_three_members():
    classifier = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    clip = np.array([[30.0, 28.0, 10.0], [5.0, 25.0, 24.0]])
    probe = np.array([[1.0, 2.0, 0.5], [-1.0, 3.0, 0.0]])
    mean = (_softmax(classifier) + _softmax(clip) + _softmax(probe)) / 3
    expected = np.sum(mean * np.log(mean), axis=1)
    np.testing.assert_allclose(cooked_score([classifier, clip, probe]), expected)
    members = [FixedLogits(logits=z).fit() for z in (classifier, clip, probe)]
    ens = cooked_ensemble(*members)
    X = np.zeros((2, 1))
    np.testing.assert_allclose(ens.predict_proba(X), mean)
    np.testing.assert_array_equal(ens.predict(X), mean.argmax(axis=1))


def test_fixed_logits_refuses_other_rows_and_reads_probabilities():
    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    member = FixedLogits(logits=p, kind="probabilities").fit()
    np.testing.assert_allclose(member.predict_proba(np.zeros((2, 3))), p)
    with pytest.raises(ValueError, match="cover 2 rows"):
        member.decision_function(np.zeros((3, 3)))

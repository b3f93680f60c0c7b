"""AMU-Tuning (closed form) against the official formula re-derived independently: scipy's
kurtosis for the uncertainty factor, scipy's z-score for logit_normalize, a loop for the
paper's feature-initialised head; the gain over zero-shot where the auxiliary encoder carries
the class signal; save/load."""
import numpy as np
import pytest
from scipy.stats import kurtosis, zscore

from solvers.errors import InputError
from solvers.few_shot.amu import AMU
from solvers.persistence import load_npz, save_npz


def unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def problem(seed=0, C=5, D=8, A=6, n=20, n_test=400):
    """CLIP features weakly aligned with the text weights; auxiliary features that separate classes."""
    rng = np.random.default_rng(seed)
    T = rng.standard_normal((C, D))
    aux_centres = 3 * rng.standard_normal((C, A))

    def draw(m):
        y = rng.integers(0, C, m)
        clip = 0.05 * T[y] + rng.standard_normal((m, D))
        aux = aux_centres[y] + rng.standard_normal((m, A))
        return np.hstack([clip, aux]), y

    (X, y), (Xv, yv), (Xt, yt) = draw(n * C), draw(100), draw(n_test)
    return T, X, y, Xv, yv, Xt, yt


def official_logits(T, X, y, Xt, alpha, power=0.4):
    """The official forward with the feature-initialised head, written out independently."""
    C, D = T.shape
    clip, aux = unit(Xt[:, :D]), unit(Xt[:, D:])
    W = np.zeros((C, aux.shape[1]))
    for row, label in zip(unit(X[:, D:]), y):
        W[label] += row
    W /= len(y) / C
    zs = 100 * clip @ unit(T).T
    p = np.exp(zs - zs.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    m4 = kurtosis(p, axis=1, fisher=False) * ((C - 1) / C) ** 2  # torch.std is unbiased
    kappa = (m4 / 250) ** -power
    return zs + alpha * kappa[:, None] * zscore(aux @ W.T, axis=1, ddof=1)


def test_logits_match_the_official_formula():
    T, X, y, _, _, Xt, _ = problem()
    model = AMU(text_weights=T, alpha=0.7).fit(X, y)
    np.testing.assert_allclose(model.decision_function(Xt), official_logits(T, X, y, Xt, 0.7), rtol=1e-9, atol=1e-9)


def test_uncertainty_none_and_gda_head():
    T, X, y, _, _, Xt, _ = problem(1)
    plain = AMU(text_weights=T, alpha=1.0, uncertainty="none").fit(X, y)
    zs, bias = plain.logit_parts(Xt)
    np.testing.assert_allclose(zs + bias, plain.decision_function(Xt))
    from solvers.few_shot.gda import GDA

    D = T.shape[1]
    gda = GDA(n_classes=len(T)).fit(unit(X[:, D:]), y)
    head = AMU(text_weights=T, alpha=1.0, uncertainty="none", head="gda").fit(X, y)
    _, bias = head.logit_parts(Xt)
    np.testing.assert_allclose(bias, zscore(gda.decision_function(unit(Xt[:, D:])), axis=1, ddof=1), atol=1e-9)


def test_gain_over_zero_shot_on_the_auxiliary_signal():
    T, X, y, Xv, yv, Xt, yt = problem(2)
    model = AMU(text_weights=T).fit(X, y, Xv, yv)
    zs, _ = model.logit_parts(Xt)
    zero_shot = np.mean(zs.argmax(1) == yt)
    assert model.alpha_source_ == "validation"
    assert model.score(Xt, yt) > zero_shot + 0.3


def test_no_validation_warns_and_uses_the_official_alpha():
    T, X, y, *_ = problem(3)
    with pytest.warns(UserWarning, match="no validation split"):
        model = AMU(text_weights=T).fit(X, y)
    assert model.alpha_ == 0.5 and model.fit_warnings_


def test_bad_inputs():
    T, X, y, *_ = problem(4)
    with pytest.raises(InputError, match="auxiliary"):
        AMU(text_weights=T, alpha=1.0).fit(X[:, :T.shape[1]], y)
    with pytest.raises(InputError, match="text_weights"):
        AMU(alpha=1.0).fit(X, y)
    with pytest.raises(InputError, match="uncertainty"):
        AMU(text_weights=T, alpha=1.0, uncertainty="kurt").fit(X, y)


def test_save_load_round_trip(tmp_path):
    T, X, y, Xv, yv, Xt, _ = problem(5)
    model = AMU(text_weights=T, head="gda").fit(X, y, Xv, yv)
    save_npz(model, tmp_path / "amu", encoder="clip")
    loaded = load_npz(tmp_path / "amu")
    np.testing.assert_array_equal(loaded.decision_function(Xt), model.decision_function(Xt))
    assert loaded.alpha_ == model.alpha_

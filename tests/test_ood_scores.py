"""OOD scores against hand formulas (scipy logsumexp, explicit entropy, GEN on a tiny case) and
the OOD metrics against scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.metrics import average_precision_score, roc_auc_score

from solvers.metrics.ood import aupr_in, aupr_out, auroc
from solvers.ood.scores import energy, gen, max_logit, mcm, msp, neg_entropy


def test_scores_match_hand_formulas():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20, 5)) * 3
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(msp(z), p.max(axis=1))
    np.testing.assert_allclose(max_logit(z), z.max(axis=1))
    np.testing.assert_allclose(energy(z), logsumexp(z, axis=1))
    np.testing.assert_allclose(energy(z, temperature=2.0), 2.0 * logsumexp(z / 2.0, axis=1))
    np.testing.assert_allclose(neg_entropy(z), np.sum(p * np.log(p), axis=1))
    cos = rng.uniform(-1, 1, size=(20, 5))
    q = np.exp(cos) / np.exp(cos).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(mcm(cos), q.max(axis=1))


def test_gen_tiny_case_by_hand():
    p = np.array([[0.7, 0.2, 0.1]])
    z = np.log(p)
    g = 0.1
    by_hand = -(0.7 ** g * 0.3 ** g + 0.2 ** g * 0.8 ** g + 0.1 ** g * 0.9 ** g)
    np.testing.assert_allclose(gen(z, gamma=g), [by_hand])
    top2 = -(0.7 ** g * 0.3 ** g + 0.2 ** g * 0.8 ** g)
    np.testing.assert_allclose(gen(z, gamma=g, top_m=2), [top2])


def test_confident_rows_score_higher():
    sharp, flat = np.array([[10.0, 0.0, 0.0]]), np.array([[1.0, 1.0, 1.0]])
    for score in (msp, neg_entropy, gen):
        assert score(sharp)[0] > score(flat)[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_equal_sklearn_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    s_id, s_ood = rng.normal(1, 1, 300), rng.normal(0, 1, 200)
    labels = np.r_[np.ones(300), np.zeros(200)]
    scores = np.r_[s_id, s_ood]
    assert auroc(s_id, s_ood) == pytest.approx(roc_auc_score(labels, scores))
    assert aupr_in(s_id, s_ood) == pytest.approx(average_precision_score(labels, scores))
    assert aupr_out(s_id, s_ood) == pytest.approx(average_precision_score(1 - labels, -scores))

"""Metrics against scikit-learn and hand-computed cases."""
import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    log_loss,
    roc_auc_score,
    top_k_accuracy_score,
)

from solvers.errors import InputError
from solvers.metrics.classification import (
    balanced_accuracy,
    classification_metrics,
    ece,
    nll,
    per_class_accuracy,
    reliability_bins,
    topk_accuracy,
)
from solvers.metrics.ood import aupr_in, aupr_out, auroc, fpr_at_tpr, roc_points


@pytest.fixture
def cls_data():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((200, 6))
    y = rng.integers(0, 6, 200)
    logits[np.arange(200), y] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, logits, probs


@pytest.mark.parametrize("k", [1, 2, 5])
def test_topk(cls_data, k):
    y, logits, _ = cls_data
    assert topk_accuracy(y, logits, k) == pytest.approx(top_k_accuracy_score(y, logits, k=k, labels=range(6)))


def test_balanced_and_per_class(cls_data):
    y, logits, _ = cls_data
    pred = logits.argmax(1)
    assert balanced_accuracy(y, pred) == pytest.approx(balanced_accuracy_score(y, pred))
    per = per_class_accuracy(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0]), n_classes=3)
    np.testing.assert_allclose(per, [0.5, 2 / 3, np.nan])


def test_nll(cls_data):
    y, _, probs = cls_data
    assert nll(y, probs) == pytest.approx(log_loss(y, probs, labels=range(6)), rel=1e-10)


def test_ece_hand_case():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.35, 0.65], [0.55, 0.45]])
    y = np.array([0, 1, 1, 0])
    # 3 bins of width 1/3: (1/3, 2/3] holds conf .65 (right) and .55 (right): acc 1, conf .6
    # (2/3, 1] holds .9 (right) and .8 (wrong): acc .5, conf .85
    expected = 0.5 * abs(1 - 0.6) + 0.5 * abs(0.5 - 0.85)
    assert ece(y, probs, n_bins=3) == pytest.approx(expected)
    bins = reliability_bins(y, probs, n_bins=3)
    np.testing.assert_array_equal(bins["count"], [0, 2, 2])
    np.testing.assert_allclose(bins["confidence"][1:], [0.6, 0.85])
    np.testing.assert_allclose(bins["accuracy"][1:], [1.0, 0.5])


@pytest.fixture
def ood():
    rng = np.random.default_rng(1)
    s_id = np.round(rng.normal(1.0, 1.0, 300), 1)
    s_ood = np.round(rng.normal(0.0, 1.0, 250), 1)
    return s_id, s_ood


def test_auroc_and_aupr(ood):
    s_id, s_ood = ood
    labels = np.r_[np.ones(300), np.zeros(250)]
    scores = np.r_[s_id, s_ood]
    assert auroc(s_id, s_ood) == pytest.approx(roc_auc_score(labels, scores))
    assert aupr_in(s_id, s_ood) == pytest.approx(average_precision_score(labels, scores))
    assert aupr_out(s_id, s_ood) == pytest.approx(average_precision_score(1 - labels, -scores))


def test_aupr_trapezoid_is_openoods_and_differs_from_average_precision(ood):
    """OpenOOD v1.5 (auc_and_fpr_recall): aupr_in = auc(recall, precision) of
    precision_recall_curve(ID = 1, score), aupr_out the same with (OOD = 1, -score). Tied scores
    (rounded to 0.1) make it differ from average precision."""
    from sklearn.metrics import auc, precision_recall_curve

    from solvers.metrics.ood import OOD_METRICS, OPENOOD_COLUMNS, ood_metrics

    s_id, s_ood = ood
    labels = np.r_[np.ones(300), np.zeros(250)]
    scores = np.r_[s_id, s_ood]
    precision, recall, _ = precision_recall_curve(labels, scores)
    openood_in = auc(recall, precision)
    precision, recall, _ = precision_recall_curve(1 - labels, -scores)
    openood_out = auc(recall, precision)
    assert aupr_in(s_id, s_ood, "trapezoid") == pytest.approx(openood_in, abs=1e-12)
    assert aupr_out(s_id, s_ood, "trapezoid") == pytest.approx(openood_out, abs=1e-12)
    assert abs(openood_out - average_precision_score(1 - labels, -scores)) > 0.005  # two conventions
    table = ood_metrics(s_id, s_ood)
    assert table["aupr_in"] == pytest.approx(average_precision_score(labels, scores))
    assert table["aupr_in_trapezoid"] == pytest.approx(openood_in, abs=1e-12)
    assert table["aupr_out_trapezoid"] == pytest.approx(openood_out, abs=1e-12)
    assert "average precision" in OOD_METRICS["aupr_in"][0] and "trapezoid" in OOD_METRICS["aupr_out_trapezoid"][0]
    assert list(OPENOOD_COLUMNS) == ["FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT"]
    assert set(OPENOOD_COLUMNS.values()) <= set(table)
    # A hand case: ID 0.9, 0.5; OOD 0.5, 0.1. Points (R, P): (0, 1), (0.5, 1), (1, 2/3), (1, 1/2):
    # trapezoid 0.5 * 1 + 0.5 * (1 + 2/3) / 2 = 11/12; average precision 0.5 * 1 + 0.5 * 2/3 = 5/6.
    assert aupr_in([0.9, 0.5], [0.5, 0.1], "trapezoid") == pytest.approx(11 / 12)
    assert aupr_in([0.9, 0.5], [0.5, 0.1]) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="method must be one of"):
        aupr_in(s_id, s_ood, "riemann")


@pytest.mark.parametrize("tpr", [0.95, 0.8, 0.5])
def test_fpr_at_tpr_brute_force(ood, tpr):
    s_id, s_ood = ood
    best = 1.0
    for t in np.unique(np.r_[s_id, s_ood]):
        if np.mean(s_id >= t) >= tpr:
            best = min(best, np.mean(s_ood >= t))
    assert fpr_at_tpr(s_id, s_ood, tpr) == pytest.approx(best)


def test_topk_breaks_ties_as_predict_does():
    """Tied scores: argmax (predict) takes the lowest class index; top-k must agree with it."""
    scores = np.array([[0.5, 0.5, 0.0], [0.2, 0.4, 0.4], [0.3, 0.3, 0.3], [0.1, 0.9, 0.0]])
    y = np.array([1, 2, 0, 1])
    # row 0: class 0 wins the tie (miss at k=1, hit at k=2); row 1: class 1 wins (miss, hit);
    # row 2: class 0 first (hit); row 3: hit
    assert topk_accuracy(y, scores, 1) == pytest.approx(np.mean(scores.argmax(1) == y)) == 0.5
    assert topk_accuracy(y, scores, 2) == 1.0
    assert topk_accuracy(np.array([2]), scores[2:3], 2) == 0.0
    # cases where NumPy's argpartition picked the later of tied classes: predict says class 2
    tied = np.array([[0.0, 0.0, 1.0, 1.0]])
    assert tied.argmax(1)[0] == 2 and topk_accuracy(np.array([3]), tied, 1) == 0.0
    assert topk_accuracy(np.array([2]), tied, 1) == 1.0
    wide = np.array([[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 1.0]])  # order 8, 0, 1, 9, ...
    assert topk_accuracy(np.array([9]), wide, 3) == 0.0 and topk_accuracy(np.array([9]), wide, 4) == 1.0


def test_fpr_at_tpr_both_conventions_against_sklearn_roc(ood):
    """ID positive: scikit-learn's ROC of (ID = 1, score); OOD positive: OpenOOD v1.5's
    auc_and_fpr_recall, roc_curve(OOD = 1, -score) at the first TPR >= 0.95."""
    from sklearn.metrics import roc_curve

    from solvers.metrics.ood import OOD_METRICS, ood_metrics

    s_id, s_ood = ood
    labels = np.r_[np.ones(300), np.zeros(250)]
    scores = np.r_[s_id, s_ood]
    fpr, tpr, _ = roc_curve(labels, scores)
    assert fpr_at_tpr(s_id, s_ood, 0.95, positive="id") == pytest.approx(fpr[np.argmax(tpr >= 0.95)])
    fpr, tpr, _ = roc_curve(1 - labels, -scores)
    openood = fpr[np.argmax(tpr >= 0.95)]
    assert fpr_at_tpr(s_id, s_ood, 0.95, positive="ood") == pytest.approx(openood)
    assert openood != pytest.approx(fpr_at_tpr(s_id, s_ood, 0.95))  # the two really differ here
    table = ood_metrics(s_id, s_ood)
    assert list(table) == list(OOD_METRICS) and table["fpr95_ood"] == pytest.approx(openood)
    assert "OpenOOD" in OOD_METRICS["fpr95_ood"][0]
    with pytest.raises(ValueError, match="positive must be one of"):
        fpr_at_tpr(s_id, s_ood, positive="both")


@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("n_classes", [3, 1000])
def test_logit_metrics_equal_the_probability_metrics_and_sklearn(n_classes, temperature):
    from solvers import softmax
    from solvers.metrics.classification import LOGIT_BLOCK_VALUES, logit_metrics

    rng = np.random.default_rng(n_classes)
    n = 3 * LOGIT_BLOCK_VALUES // n_classes + 7  # several row blocks and a ragged last one
    logits = (rng.standard_normal((n, n_classes)) * 2).astype(np.float32)
    logits[:5, :2] = 9.0  # exact ties: the lower class wins, as argmax
    y = rng.integers(0, n_classes, n)
    y[:5] = 1
    y[-3:] = n_classes - 1
    probs = softmax(logits, temperature)
    got = logit_metrics(y, logits, temperature)
    assert got["top1"] == topk_accuracy(y, logits, 1) == np.mean(probs.argmax(axis=1) == y)
    assert got["top5"] == (topk_accuracy(y, logits, 5) if n_classes >= 5 else None)  # 1 by construction below 5
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, logits.argmax(axis=1)), abs=1e-15)
    assert got["ece"] == ece(y, probs)  # float for float: the same confidences and bins
    assert got["nll"] == nll(y, probs)
    if probs[np.arange(n), y].min() > 1e-12:  # no clipping, where scikit-learn clips at machine epsilon
        assert got["nll"] == pytest.approx(log_loss(y, probs, labels=np.arange(n_classes)), rel=1e-9)
    else:
        assert temperature < 1  # at T = 1 the comparison with scikit-learn must run


def test_logit_metrics_balanced_accuracy_skips_absent_classes():
    from solvers.metrics.classification import logit_metrics

    logits = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 3.0, 1.0]])
    y = np.array([0, 0, 2])  # class 1 is absent: recall of class 0 is 1/2, of class 2 is 0
    assert logit_metrics(y, logits)["balanced_accuracy"] == pytest.approx(0.25)


def test_classification_metrics_of_probabilities_against_sklearn(cls_data):
    y, _, probs = cls_data
    got = classification_metrics(y, probs)
    assert list(got) == ["top1", "top5", "balanced_accuracy", "ece", "nll"]
    assert got["top1"] == pytest.approx(np.mean(probs.argmax(1) == y))
    assert got["top5"] == pytest.approx(top_k_accuracy_score(y, probs, k=5, labels=range(6)))
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, probs.argmax(1)))
    assert got["nll"] == pytest.approx(log_loss(y, probs, labels=range(6)), rel=1e-10)
    assert got["ece"] == ece(y, probs)


@pytest.mark.parametrize("n_classes", [2, 4, 5])
def test_top5_is_none_below_five_classes(n_classes):
    from solvers.metrics.classification import logit_metrics

    rng = np.random.default_rng(n_classes)
    logits = rng.standard_normal((40, n_classes))
    y = rng.integers(0, n_classes, 40)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for got in (classification_metrics(y, probs), logit_metrics(y, logits)):
        if n_classes < 5:
            assert got["top5"] is None
        else:
            assert got["top5"] == pytest.approx(top_k_accuracy_score(y, logits, k=5, labels=range(n_classes)))


def test_roc_points_are_sklearns_curve(ood):
    from sklearn.metrics import roc_curve

    s_id, s_ood = ood  # rounded to 0.1: many ties
    labels = np.r_[np.ones(300), np.zeros(250)]
    ref_fpr, ref_tpr, _ = roc_curve(labels, np.r_[s_id, s_ood], drop_intermediate=False)
    fpr, tpr = roc_points(s_id, s_ood)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(s_id, s_ood))


def test_ood_metrics_refuse_an_empty_side(ood):
    s_id, _ = ood
    for metric in (auroc, aupr_in, aupr_out, fpr_at_tpr, roc_points):
        with pytest.raises(InputError, match="both kinds of rows"):
            metric(s_id, np.array([]))
        with pytest.raises(InputError, match="both kinds of rows"):
            metric(np.array([]), s_id)


def test_top5_counts_the_fifth_place_and_not_the_sixth():
    """Eight classes and a true class at every rank: top-5 against scikit-learn, and the
    defaults (top-1, softmax at temperature 1) against their explicit values."""
    from solvers import softmax
    from solvers.metrics.classification import logit_metrics

    rng = np.random.default_rng(11)
    logits = rng.standard_normal((400, 8))
    ranks = np.argsort(-logits, axis=1)
    y = ranks[np.arange(400), np.arange(400) % 8]  # row i's true class is ranked i mod 8
    expected = top_k_accuracy_score(y, logits, k=5, labels=np.arange(8))
    assert expected == 5 / 8
    got = logit_metrics(y, logits)
    assert got["top5"] == topk_accuracy(y, logits, 5) == expected
    assert got["top1"] == topk_accuracy(y, logits) == 1 / 8
    assert got["nll"] == pytest.approx(log_loss(y, softmax(logits), labels=np.arange(8)), rel=1e-12)
    halved = logit_metrics(y, logits, temperature=2.0)
    assert halved["nll"] == pytest.approx(nll(y, softmax(logits / 2.0)), rel=1e-12)
    assert halved["ece"] == pytest.approx(ece(y, softmax(logits / 2.0)), abs=1e-12)


def test_reliability_bins_brute_force_and_singleton_bins_in_ece():
    """Confidences below 1/15 (20 classes) and exactly on bin edges; each row's bin is the
    (lo, hi] that holds it. ECE by hand on four rows in four bins of one row each."""
    rng = np.random.default_rng(12)
    probs = rng.dirichlet(np.full(20, 50.0), 300)  # flat: max probabilities near 0.06
    probs[:3] = np.eye(20)[:3] * 0.2 + 0.8 / 20  # max probability 0.24 ...
    probs[3] = np.full(20, 1 / 20)
    y = rng.integers(0, 20, 300)
    bins = reliability_bins(y, probs)
    conf = probs.max(1)
    assert (conf < 1 / 15).sum() > 100
    which = np.array([max(0, int(np.ceil(c * 15 - 1e-12)) - 1) for c in conf])
    np.testing.assert_array_equal(bins["count"], np.bincount(which, minlength=15))
    assert len(bins["edges"]) == 16
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.45, 0.55], [0.2, 0.8]])
    y = np.array([0, 1, 1, 1])
    # bins (0.8, 0.867], (0.667, 0.733], (0.533, 0.6], (0.733, 0.8]: one row each
    expected = (abs(1 - 0.9) + abs(0 - 0.7) + abs(1 - 0.55) + abs(1 - 0.8)) / 4
    assert ece(y, probs) == pytest.approx(expected, abs=1e-12)
    assert ece(y, probs, n_bins=1) == pytest.approx(abs(0.75 - (0.9 + 0.7 + 0.55 + 0.8) / 4), abs=1e-12)


def test_nll_of_a_zero_probability_is_clipped_at_eps():
    from solvers.metrics.classification import logit_metrics

    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert nll(np.array([1, 0]), probs) == pytest.approx((-np.log(1e-12) - np.log(0.5)) / 2)
    assert nll(np.array([1, 0]), probs, eps=1e-6) == pytest.approx((-np.log(1e-6) - np.log(0.5)) / 2)
    logits = np.array([[0.0, -2000.0], [0.0, 0.0]])  # exp underflows to exactly 0
    assert logit_metrics(np.array([1, 0]), logits)["nll"] == pytest.approx((-np.log(1e-12) - np.log(0.5)) / 2)


def test_fpr95_where_95_percent_is_a_whole_number_of_rows():
    """20 ID rows: 95% is exactly 19 of them, so the threshold is the 19th highest ID score
    (not the 20th); the default tpr is 0.95."""
    s_id = np.arange(20, dtype=float)  # the 19th highest is 1.0
    s_ood = np.array([0.5, 1.0, 1.5, 25.0, -3.0, 18.5])
    assert fpr_at_tpr(s_id, s_ood) == 4 / 6  # 1.0, 1.5, 25 and 18.5 are >= 1.0
    assert fpr_at_tpr(s_id, s_ood, tpr=1.0) == 5 / 6
    assert fpr_at_tpr(s_id, s_ood, tpr=0.01) == 1 / 6  # one ID row at least, and only one: threshold 19


def test_retrieval_checks_and_shapes_by_hand():
    from solvers.metrics.retrieval import clip_score, image_to_text_recall, modality_gap, text_to_image_recall

    images = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    texts = np.array([[-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -2.0]])
    gap = np.array([1, 1, 1, 0]) / 3 - np.array([-1, 0, 0, -1]) / 2
    assert modality_gap(images, texts) == pytest.approx(np.linalg.norm(gap))
    np.testing.assert_allclose(clip_score(images[:2], np.array([[1.0, 1.0, 0, 0], [0, -1.0, 0, 0]]), w=2.0),
                               [2.0 / np.sqrt(2), 0.0])
    for recall in (image_to_text_recall, text_to_image_recall):
        for bad in ([0, 3], [-1, 0], [0]):
            with pytest.raises(InputError, match=r"for each of the 2 captions, an image in \[0, 3\)"):
                recall(images, texts, np.array(bad))
    assert text_to_image_recall(images, texts, np.array([0, 2]), ks=(1, 3)) == {1: 0.0, 3: 1.0}


def test_roc_points_end_at_one_when_the_lowest_score_is_an_id_row():
    from sklearn.metrics import roc_curve

    s_id = np.array([0.9, 0.4, 0.4, -2.0])  # the lowest score of all is in-distribution
    s_ood = np.array([0.5, 0.4, 0.1])
    ref_fpr, ref_tpr, _ = roc_curve(np.r_[np.ones(4), np.zeros(3)], np.r_[s_id, s_ood], drop_intermediate=False)
    fpr, tpr = roc_points(s_id, s_ood)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert tpr[-1] == 1.0 and tpr[-2] == 0.75


@pytest.mark.parametrize("n_classes", [4, 9])
def test_logit_metrics_ranks_with_many_ties_equal_a_brute_force_count(n_classes):
    """Integer logits in 0..3: most rows hold ties, at the top and below it. Each row's place is
    counted by hand (larger scores, then equal ones in earlier columns); top-1 is argmax's choice."""
    from solvers.metrics.classification import LogitMetrics

    rng = np.random.default_rng(n_classes)
    logits = rng.integers(0, 4, (700, n_classes)).astype(np.float32)
    y = rng.integers(0, n_classes, 700)
    places = np.array([int((row > row[c]).sum() + (row[:c] == row[c]).sum()) for row, c in zip(logits, y)])
    assert set(places) == set(range(n_classes))  # every place occurs, ties included
    metrics = LogitMetrics()
    for lo in range(0, 700, 64):
        metrics.add(y[lo:lo + 64], logits[lo:lo + 64])
    got = metrics.result()
    assert got["top1"] == np.mean(places == 0) == np.mean(logits.argmax(axis=1) == y)
    assert got["top5"] == (np.mean(places < 5) if n_classes >= 5 else None)
    recall = [np.mean(places[y == c] == 0) for c in range(n_classes)]
    assert got["balanced_accuracy"] == pytest.approx(np.mean(recall), abs=1e-15)

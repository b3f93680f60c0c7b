"""OOD detection metrics on NumPy arrays (Hendrycks & Gimpel, ICLR 2017): AUROC, FPR at a TPR,
AUPR-In/Out and the ROC curve's points, in-distribution rows as positives and a higher score
meaning more in-distribution. Named as everywhere in featurestore: ``auroc``, ``fpr95``,
``aupr_in``, ``aupr_out``.

AUPR comes in two conventions, which differ by several points when scores tie or classes are
unbalanced: ``aupr_in`` / ``aupr_out`` are **average precision** (scikit-learn's
``average_precision_score``: sum of (R_n - R_{n-1}) P_n, a step function), the default;
``aupr_in_trapezoid`` / ``aupr_out_trapezoid`` integrate the precision-recall curve with the
trapezoid rule from (recall 0, precision 1), which is OpenOOD's ``auc(recall, precision)`` of
``precision_recall_curve`` (``method="trapezoid"``). ``OPENOOD_COLUMNS`` are OpenOOD v1.5's
table columns (FPR@95 with OOD positive, AUROC, trapezoid AUPR-In and AUPR-Out)."""
from __future__ import annotations

import math

import numpy as np

from solvers.errors import InputError


def _labels_scores(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (1 = positive) and scores of positives then negatives; both must be present."""
    pos, neg = np.ravel(np.asarray(pos, np.float64)), np.ravel(np.asarray(neg, np.float64))
    if pos.size == 0 or neg.size == 0:
        raise InputError(f"OOD metrics need scores of both kinds of rows; got {pos.size} positive "
                         f"(in-distribution) and {neg.size} negative")
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    return labels, scores


def auroc(scores_id: np.ndarray, scores_ood: np.ndarray) -> float:
    """Area under the ROC curve with ID as positives (Mann-Whitney U with average ranks for ties)."""
    from scipy.stats import rankdata

    labels, scores = _labels_scores(scores_id, scores_ood)
    ranks = rankdata(scores)
    n_pos, n_neg = labels.sum(), (1 - labels).sum()
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


FPR_POSITIVES = ("id", "ood")


def fpr_at_tpr(scores_id: np.ndarray, scores_ood: np.ndarray, tpr: float = 0.95,
               positive: str = "id") -> float:
    """False-positive rate at the first threshold whose true-positive rate reaches ``tpr``.

    ``positive="id"`` (Hendrycks & Gimpel; scikit-learn's ROC with ID as positives): the
    fraction of OOD rows accepted (score >= threshold) by the highest threshold that accepts
    >= ``tpr`` of the ID rows. ``positive="ood"`` (OpenOOD v1.5, ``auc_and_fpr_recall``): OOD
    rows are the positives, ranked by the negated score; the fraction of ID rows flagged as OOD
    (score <= threshold) at the first threshold that flags >= ``tpr`` of the OOD rows. The two
    differ; name the one a table shows.
    """
    if positive not in FPR_POSITIVES:
        raise InputError(f"positive must be one of {FPR_POSITIVES}, got {positive!r}")
    labels, scores = _labels_scores(scores_id, scores_ood)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if positive == "ood":
        pos, neg = -neg, -pos
    ranked = np.sort(pos)[::-1]
    needed = max(1, math.ceil(tpr * ranked.size - 1e-9))
    threshold = ranked[needed - 1]
    return float(np.mean(neg >= threshold))


#: Column name -> (description, function of (scores_id, scores_ood)) of every OOD metric, in
#: table order: what `fs ood` reports, each named by its convention.
OOD_METRICS = {
    "auroc": ("AUROC (ID positive; symmetric)", lambda i, o: auroc(i, o)),
    "fpr95": ("FPR@95TPR, ID positive: OOD accepted when 95% of ID is kept (Hendrycks & Gimpel)",
              lambda i, o: fpr_at_tpr(i, o, 0.95, "id")),
    "fpr95_ood": ("FPR@95TPR, OOD positive: ID rejected when 95% of OOD is caught (OpenOOD v1.5)",
                  lambda i, o: fpr_at_tpr(i, o, 0.95, "ood")),
    "aupr_in": ("AUPR-In, average precision (ID positive; scikit-learn's average_precision_score)",
                lambda i, o: aupr_in(i, o)),
    "aupr_out": ("AUPR-Out, average precision (OOD positive)", lambda i, o: aupr_out(i, o)),
    "aupr_in_trapezoid": ("AUPR-In, trapezoid auc(recall, precision) (ID positive; OpenOOD)",
                          lambda i, o: aupr_in(i, o, "trapezoid")),
    "aupr_out_trapezoid": ("AUPR-Out, trapezoid auc(recall, precision) (OOD positive; OpenOOD)",
                           lambda i, o: aupr_out(i, o, "trapezoid")),
}

#: OpenOOD v1.5's table (``compute_all_metrics``, without its classification ACC): printed header
#: -> key of ``OOD_METRICS``, in its column order.
OPENOOD_COLUMNS = {"FPR@95": "fpr95_ood", "AUROC": "auroc", "AUPR_IN": "aupr_in_trapezoid",
                   "AUPR_OUT": "aupr_out_trapezoid"}


def ood_metrics(scores_id: np.ndarray, scores_ood: np.ndarray) -> dict[str, float]:
    """Every metric of ``OOD_METRICS`` for one score (higher = more in-distribution)."""
    return {name: float(fn(scores_id, scores_ood)) for name, (_, fn) in OOD_METRICS.items()}


def _counts_at_thresholds(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives accepted (score >= threshold) at each distinct score, highest
    threshold first (tied scores share one threshold)."""
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp = np.cumsum(labels)[last]
    return tp, (last + 1) - tp


def roc_points(scores_id: np.ndarray, scores_ood: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve with ID as positives: (false-positive rates, true-positive rates) at every
    distinct score used as threshold, from (0, 0) to (1, 1) (the points of scikit-learn's
    ``roc_curve(..., drop_intermediate=False)``)."""
    labels, scores = _labels_scores(scores_id, scores_ood)
    tp, fp = _counts_at_thresholds(labels, scores)
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def _average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AP = sum over distinct thresholds of (R_n - R_{n-1}) P_n (tied scores share one threshold)."""
    tp, fp = _counts_at_thresholds(labels, scores)
    precision = tp / (tp + fp)
    recall = tp / labels.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _trapezoid_pr(labels: np.ndarray, scores: np.ndarray) -> float:
    """Trapezoid area under the precision-recall points (R_n, P_n) of every distinct threshold,
    starting from (0, 1): sum of (R_n - R_{n-1}) (P_n + P_{n-1}) / 2."""
    tp, fp = _counts_at_thresholds(labels, scores)
    precision = np.r_[1.0, tp / (tp + fp)]
    recall = np.r_[0.0, tp / labels.sum()]
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2))


AUPR_METHODS = ("average_precision", "trapezoid")


def _aupr(labels: np.ndarray, scores: np.ndarray, method: str) -> float:
    if method == "average_precision":
        return _average_precision(labels, scores)
    if method == "trapezoid":
        return _trapezoid_pr(labels, scores)
    raise InputError(f"method must be one of {AUPR_METHODS}, got {method!r}")


def aupr_in(scores_id: np.ndarray, scores_ood: np.ndarray, method: str = "average_precision") -> float:
    """AUPR with ID as positives and higher score = more ID: average precision (default) or the
    trapezoid area OpenOOD reports (``method="trapezoid"``)."""
    labels, scores = _labels_scores(scores_id, scores_ood)
    return _aupr(labels, scores, method)


def aupr_out(scores_id: np.ndarray, scores_ood: np.ndarray, method: str = "average_precision") -> float:
    """AUPR with OOD as positives, ranked by the negated score (``method`` as in :func:`aupr_in`)."""
    labels, scores = _labels_scores(scores_ood, scores_id)
    return _aupr(labels, -scores, method)

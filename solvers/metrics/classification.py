"""Evaluation metrics on NumPy arrays: accuracy variants, calibration (ECE, NLL) and OOD
detection (AUROC, FPR at a TPR, AUPR-In/Out; Hendrycks & Gimpel, ICLR 2017, in-distribution as
positives, higher score = more in-distribution)."""
from __future__ import annotations

import math

import numpy as np

from solvers.errors import InputError


def stable_positions(scores: np.ndarray, columns: np.ndarray, rows: np.ndarray | None = None,
                     block: int = 1024) -> np.ndarray:
    """Position (0 = first) of ``scores[rows[i], columns[i]]`` when row ``rows[i]`` is sorted by
    decreasing score with ties in increasing column order (a stable sort): the number of larger
    scores plus the number of equal scores in earlier columns. ``rows`` defaults to 0 .. n-1.

    This is the order ``np.argmax`` (hence ``predict``) and an exact top-k use: ties are not
    counted in the queried item's favour. Computed in row blocks, O(block x n_columns) memory.
    """
    scores = np.asarray(scores)
    columns = np.asarray(columns, dtype=np.int64)
    rows = np.arange(columns.size) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.empty(columns.size, dtype=np.int64)
    index = np.arange(scores.shape[1])
    for lo in range(0, columns.size, block):
        r, c = rows[lo:lo + block], columns[lo:lo + block]
        S = scores[r]
        own = S[np.arange(r.size), c][:, None]
        out[lo:lo + block] = (S > own).sum(axis=1) + ((S == own) & (index[None, :] < c[:, None])).sum(axis=1)
    return out


def topk_accuracy(y: np.ndarray, scores: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose true class is among the k highest scores (logits or probabilities),
    ties broken as ``predict`` breaks them (the lower class index first), so top-1 accuracy is
    the accuracy of argmax predictions."""
    y, scores = np.asarray(y, dtype=np.int64), np.asarray(scores)
    return float(np.mean(stable_positions(scores, y) < int(k)))


def per_class_accuracy(y: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Recall of each class (n_classes,); NaN for classes absent from y."""
    y, y_pred = np.asarray(y), np.asarray(y_pred)
    n_classes = int(max(y.max(), y_pred.max()) + 1) if n_classes is None else n_classes
    total = np.bincount(y, minlength=n_classes).astype(float)
    correct = np.bincount(y[y == y_pred], minlength=n_classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / total, np.nan)


def balanced_accuracy(y: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-class recall over the classes present in y."""
    return float(np.nanmean(per_class_accuracy(y, y_pred)))


def reliability_bins(y: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Equal-width confidence bins (lo, hi] over [0, 1]: per-bin mean confidence, accuracy, count."""
    probs = np.asarray(probs)
    return _bins(probs.max(axis=1), probs.argmax(axis=1) == np.asarray(y), n_bins)


def _bins(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> dict[str, np.ndarray]:
    correct = np.asarray(correct).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, conf, n_bins) / count
        accuracy = np.bincount(which, correct, n_bins) / count
    return {"edges": edges, "confidence": confidence, "accuracy": accuracy, "count": count}


def _ece_of_bins(bins: dict[str, np.ndarray]) -> float:
    filled = bins["count"] > 0
    gap = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    return float(np.sum(gap * bins["count"][filled]) / bins["count"].sum())


def ece(y: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al., ICML 2017): sum_b (n_b / N) |acc_b - conf_b|."""
    return _ece_of_bins(reliability_bins(y, probs, n_bins))


def nll(y: np.ndarray, probs: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the true class, probabilities clipped at ``eps``."""
    probs = np.asarray(probs, dtype=np.float64)
    return _mean_nll(probs[np.arange(probs.shape[0]), np.asarray(y)], eps)


def _mean_nll(p_true: np.ndarray, eps: float) -> float:
    return float(-np.mean(np.log(np.clip(p_true, eps, 1.0))))


LOGIT_BLOCK_VALUES = 1 << 18  # rows per block of logit_metrics: about 2 MB of float64, cache-sized


def logit_metrics(y: np.ndarray, logits: np.ndarray, temperature: float = 1.0, n_bins: int = 15,
                  eps: float = 1e-12) -> dict[str, float]:
    """top1, top5, balanced accuracy, ECE and NLL of ``logits`` (n, C) against labels ``y`` in
    0 .. C-1, with probabilities softmax(logits / temperature), in one pass of row blocks.

    The same numbers as ``topk_accuracy``, ``balanced_accuracy`` of argmax predictions, and
    ``ece`` / ``nll`` of ``solvers._base.softmax.softmax(logits, temperature)``, float for float (the
    largest probability of a row is 1 / sum_j exp(z_j - max z), that of the true class
    exp(z_y - max z) / that sum), without the (n, C) float64 probability matrix: for 50,000 x
    1,000 ImageNet logits that matrix is 400 MB written and read again. A row is "correct" in
    the ECE bins when its top-1 prediction (argmax of the logits, lower class on ties) is right.
    """
    logits = np.asarray(logits)
    y = np.asarray(y, dtype=np.int64)
    n, n_classes = logits.shape
    positions = stable_positions(logits, y)
    correct = positions < 1
    conf = np.empty(n)
    p_true = np.empty(n)
    step = max(1, LOGIT_BLOCK_VALUES // max(n_classes, 1))
    buffer = np.empty((min(step, n), n_classes), dtype=np.float64)
    temperature = float(temperature)
    for lo in range(0, n, step):
        z = buffer[:min(step, n - lo)]
        np.copyto(z, logits[lo:lo + step])
        if temperature != 1.0:
            z /= temperature
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        total = z.sum(axis=1)
        conf[lo:lo + step] = 1.0 / total
        p_true[lo:lo + step] = z[np.arange(z.shape[0]), y[lo:lo + step]] / total
    return {"top1": float(np.mean(correct)), "top5": float(np.mean(positions < 5)),
            "balanced_accuracy": balanced_accuracy(y, np.where(correct, y, -1)),  # ranked already: no argmax
            "ece": _ece_of_bins(_bins(conf, correct, n_bins)), "nll": _mean_nll(p_true, eps)}


def _labels_scores(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.concatenate([np.asarray(pos, np.float64), np.asarray(neg, np.float64)])
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
    pos, neg = np.asarray(scores_id, np.float64), np.asarray(scores_ood, np.float64)
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
    "aupr_in": ("AUPR-In (ID positive)", lambda i, o: aupr_in(i, o)),
    "aupr_out": ("AUPR-Out (OOD positive)", lambda i, o: aupr_out(i, o)),
}


def ood_metrics(scores_id: np.ndarray, scores_ood: np.ndarray) -> dict[str, float]:
    """Every metric of ``OOD_METRICS`` for one score (higher = more in-distribution)."""
    return {name: float(fn(scores_id, scores_ood)) for name, (_, fn) in OOD_METRICS.items()}


def _average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AP = sum over distinct thresholds of (R_n - R_{n-1}) P_n (tied scores share one threshold)."""
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp = np.cumsum(labels)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / labels.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def aupr_in(scores_id: np.ndarray, scores_ood: np.ndarray) -> float:
    """Average precision with ID as positives and higher score = more ID."""
    labels, scores = _labels_scores(scores_id, scores_ood)
    return _average_precision(labels, scores)


def aupr_out(scores_id: np.ndarray, scores_ood: np.ndarray) -> float:
    """Average precision with OOD as positives, ranked by the negated score."""
    labels, scores = _labels_scores(scores_ood, scores_id)
    return _average_precision(labels, -scores)

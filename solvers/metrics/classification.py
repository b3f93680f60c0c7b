"""Classification metrics on NumPy arrays: accuracy variants (top-k, balanced accuracy) and
calibration (ECE, NLL), named as everywhere in featurestore: ``top1``, ``top5``,
``balanced_accuracy``, ``ece``, ``nll``. OOD detection metrics are in ``solvers.metrics.ood``."""
from __future__ import annotations

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


#: The classification metrics every report names, in table order.
CLASSIFICATION_METRICS = ("top1", "top5", "balanced_accuracy", "ece", "nll")


def top5_applies(n_classes: int) -> bool:
    """Whether top-5 accuracy means anything: with fewer than 5 classes it is 1 by construction,
    so it is reported as None (JSON null, printed "-")."""
    return n_classes >= 5


def classification_metrics(y: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict[str, float | None]:
    """top1, top5 (None below 5 classes), balanced_accuracy (mean recall of the classes present
    in ``y``), ece and nll of class probabilities ``probs`` (n, C) against labels ``y``."""
    y, probs = np.asarray(y), np.asarray(probs)
    return {"top1": topk_accuracy(y, probs, 1),
            "top5": topk_accuracy(y, probs, 5) if top5_applies(probs.shape[1]) else None,
            "balanced_accuracy": balanced_accuracy(y, probs.argmax(axis=1)),
            "ece": ece(y, probs, n_bins), "nll": nll(y, probs)}


LOGIT_BLOCK_VALUES = 1 << 18  # rows per block of logit_metrics: about 2 MB of float64, cache-sized


class LogitMetrics:
    """``logit_metrics`` of logits that arrive in row blocks (a split scored block by block): each
    ``add(y, logits)`` reduces its rows to three numbers each (the true class's stable position,
    the largest probability, the true class's probability), so the (n, C) logits of the whole
    split never exist at once; ``result()`` gives the metrics of every row added, in order.
    ``n_rows`` (when known) sizes the per-row arrays once.
    """

    def __init__(self, temperature: float = 1.0, n_rows: int = 0) -> None:
        self.temperature = float(temperature)
        self.n_classes: int | None = None
        self._size = 0
        self._y = np.empty(n_rows, dtype=np.int64)
        self._positions = np.empty(n_rows, dtype=np.int64)
        self._conf = np.empty(n_rows)
        self._p_true = np.empty(n_rows)
        self._buffer = np.empty((0, 0))

    def _room(self, n: int) -> None:
        need = self._size + n
        if need > self._y.size:
            grown = max(need, 2 * self._y.size)
            for name in ("_y", "_positions", "_conf", "_p_true"):
                old = getattr(self, name)
                new = np.empty(grown, dtype=old.dtype)
                new[:self._size] = old[:self._size]
                setattr(self, name, new)

    def add(self, y: np.ndarray, logits: np.ndarray) -> None:
        """Add rows: labels ``y`` (k,) in 0 .. C-1 and their logits (k, C)."""
        logits, y = np.asarray(logits), np.asarray(y, dtype=np.int64)
        n, n_classes = logits.shape
        if self.n_classes is None:
            self.n_classes = n_classes
        elif n_classes != self.n_classes:
            raise InputError(f"logits of {n_classes} classes added to metrics of {self.n_classes}")
        self._room(n)
        step = max(1, LOGIT_BLOCK_VALUES // max(n_classes, 1))
        if self._buffer.shape[1] != n_classes or self._buffer.shape[0] < min(step, n):
            self._buffer = np.empty((min(step, n), n_classes), dtype=np.float64)
        for lo in range(0, n, step):
            self._add_block(y[lo:lo + step], logits[lo:lo + step])

    def _add_block(self, y: np.ndarray, S: np.ndarray) -> None:
        k = S.shape[0]
        at = slice(self._size, self._size + k)
        rows = np.arange(k)
        own = S[rows, y]
        # Stable position (as stable_positions): 0 where the true class is argmax's choice (the
        # first largest score); elsewhere larger scores plus equal ones in earlier columns,
        # counted on those rows only (one argmax pass instead of comparing every score).
        top = S.argmax(axis=1)
        positions = np.zeros(k, dtype=np.int64)
        wrong = np.flatnonzero(top != y)
        if wrong.size:
            Sw, ow = S[wrong], own[wrong][:, None]
            positions[wrong] = np.count_nonzero(Sw > ow, axis=1)
            equal = Sw == ow
            tied = np.flatnonzero(np.count_nonzero(equal, axis=1) > 1)
            if tied.size:
                earlier = np.arange(S.shape[1])[None, :] < y[wrong[tied], None]
                positions[wrong[tied]] += np.count_nonzero(equal[tied] & earlier, axis=1)
        z = self._buffer[:k]
        if self.temperature == 1.0:  # max of the float64 copy == float64 of the max: one pass fewer
            np.subtract(S, S[rows, top].astype(np.float64)[:, None], out=z)
        else:
            np.copyto(z, S)
            z /= self.temperature
            z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        total = z.sum(axis=1)
        self._y[at], self._positions[at] = y, positions
        self._conf[at] = 1.0 / total
        self._p_true[at] = z[rows, y] / total
        self._size += k

    def result(self, n_bins: int = 15, eps: float = 1e-12) -> dict[str, float | None]:
        """top1, top5 (None below 5 classes), balanced_accuracy, ece and nll of the rows added."""
        n = self._size
        y, positions = self._y[:n], self._positions[:n]
        correct = positions < 1
        return {"top1": float(np.mean(correct)),
                "top5": float(np.mean(positions < 5)) if top5_applies(self.n_classes or 0) else None,
                "balanced_accuracy": balanced_accuracy(y, np.where(correct, y, -1)),  # ranked already: no argmax
                "ece": _ece_of_bins(_bins(self._conf[:n], correct, n_bins)), "nll": _mean_nll(self._p_true[:n], eps)}


def logit_metrics(y: np.ndarray, logits: np.ndarray, temperature: float = 1.0, n_bins: int = 15,
                  eps: float = 1e-12) -> dict[str, float | None]:
    """top1, top5 (None below 5 classes), balanced_accuracy, ece and nll of ``logits`` (n, C)
    against labels ``y`` in 0 .. C-1, with probabilities softmax(logits / temperature), in one
    pass of row blocks (``LogitMetrics``: the ranks and the softmax of a block while it is in cache).

    The same numbers as ``topk_accuracy``, ``balanced_accuracy`` of argmax predictions, and
    ``ece`` / ``nll`` of ``solvers._base.softmax.softmax(logits, temperature)``, float for float (the
    largest probability of a row is 1 / sum_j exp(z_j - max z), that of the true class
    exp(z_y - max z) / that sum), without the (n, C) float64 probability matrix: for 50,000 x
    1,000 ImageNet logits that matrix is 400 MB written and read again. A row is "correct" in
    the ECE bins when its top-1 prediction (argmax of the logits, lower class on ties) is right.
    """
    logits = np.asarray(logits)
    metrics = LogitMetrics(temperature, n_rows=logits.shape[0])
    metrics.add(y, logits)
    return metrics.result(n_bins, eps)

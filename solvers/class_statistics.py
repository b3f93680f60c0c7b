"""Sufficient statistics of a Gaussian model with shared covariance, accumulated chunk by chunk.

GDA needs only per-class counts, per-class sums and the within-class scatter
sum_k sum_{i in k} (x_i - mu_k)(x_i - mu_k)^T, so a store larger than RAM can be fitted by
streaming chunks. Chunks are merged with the pairwise update of Chan, Golub & LeVeque (1979):
each chunk is centred on its own class means, and the between-chunk mean shift is added as a
rank-one term per class. This avoids the cancellation of the naive X^T X - n mu mu^T form.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from solvers.normalize import l2_normalize


@dataclass
class ClassStatistics:
    """Per-class counts (C,), per-class feature sums (C, D) and within-class scatter (D, D)."""

    counts: np.ndarray
    sums: np.ndarray
    scatter: np.ndarray

    @classmethod
    def empty(cls, n_classes: int, n_features: int) -> "ClassStatistics":
        """Statistics of zero samples."""
        return cls(np.zeros(n_classes, np.int64), np.zeros((n_classes, n_features)),
                   np.zeros((n_features, n_features)))

    @property
    def means(self) -> np.ndarray:
        """Class means (C, D); rows of empty classes are zero."""
        return self.sums / np.maximum(self.counts, 1)[:, None]

    def update(self, X: np.ndarray, y: np.ndarray) -> "ClassStatistics":
        """Merge one chunk of features ``X`` (n, D) with labels ``y`` in [0, C); returns self.

        The chunk's scatter is computed in X's dtype (float32 BLAS for float32 input) and
        accumulated in float64.
        """
        n_classes = self.counts.shape[0]
        counts = np.bincount(y, minlength=n_classes)
        sums = np.zeros((n_classes, X.shape[1]), dtype=X.dtype)
        np.add.at(sums, y, X)
        chunk_means = sums / np.maximum(counts, 1)[:, None].astype(X.dtype)
        centred = X - chunk_means[y]
        scatter = (centred.T @ centred).astype(np.float64)
        old = self.counts
        both = (old > 0) & (counts > 0)
        if both.any():
            n_a, n_b = old[both].astype(np.float64), counts[both].astype(np.float64)
            delta = self.sums[both] / n_a[:, None] - sums[both].astype(np.float64) / n_b[:, None]
            weight = n_a * n_b / (n_a + n_b)
            scatter += delta.T @ (weight[:, None] * delta)
        self.counts = old + counts
        self.sums = self.sums + sums
        self.scatter = self.scatter + scatter
        return self


def class_statistics(chunks: Iterable[tuple[np.ndarray, np.ndarray]], n_classes: int,
                     n_features: int, normalize: bool = True) -> ClassStatistics:
    """Accumulate ClassStatistics over (X, y) chunks; ``normalize`` L2-normalizes rows first
    (what GDA does with CLIP features)."""
    stats = ClassStatistics.empty(n_classes, n_features)
    for X, y in chunks:
        X = np.asarray(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float32)
        stats.update(l2_normalize(X) if normalize else X, np.asarray(y, dtype=np.int64))
    return stats

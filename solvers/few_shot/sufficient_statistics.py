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

from solvers._base.normalize import l2_normalize
from solvers.errors import InputError

# Few rows per class (few-shot fits): the class sums by rank of occurrence, one vectorized add
# per rank, instead of np.add.at (faster for few rows per class; bench/RESULTS.md).
RANKED_SUMS_MAX_COUNT = 64
#: Rows per step when a chunk is normalized and centred in place (temporaries of this many rows).
ROW_BLOCK = 2048


def _class_sums(X: np.ndarray, y: np.ndarray, counts: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class sums of the rows of X, in X's dtype: each class's rows added one at a time in
    row order, as ``np.add.at`` does (the same floating-point result, to the bit)."""
    sums = np.zeros((n_classes, X.shape[1]), dtype=X.dtype)
    if y.size == 0 or counts.size != n_classes or counts.max() > RANKED_SUMS_MAX_COUNT:
        np.add.at(sums, y, X)
        return sums
    order = np.argsort(y, kind="stable")
    rank = np.empty(y.size, dtype=np.int64)  # the row's position among the rows of its class
    rank[order] = np.arange(y.size) - np.repeat(np.cumsum(counts) - counts, counts)
    for r in range(int(counts.max())):
        rows = np.flatnonzero(rank == r)  # at most one row per class
        sums[y[rows]] += X[rows]
    return sums


@dataclass
class ClassStatistics:
    """Per-class counts (C,), per-class feature sums (C, D) and within-class scatter (D, D)."""

    counts: np.ndarray
    sums: np.ndarray
    scatter: np.ndarray

    @classmethod
    def empty(cls, n_classes: int, n_features: int) -> ClassStatistics:
        """Statistics of zero samples."""
        return cls(np.zeros(n_classes, np.int64), np.zeros((n_classes, n_features)),
                   np.zeros((n_features, n_features)))

    @property
    def means(self) -> np.ndarray:
        """Class means (C, D); rows of empty classes are zero."""
        return self.sums / np.maximum(self.counts, 1)[:, None]

    @classmethod
    def of_chunk(cls, X: np.ndarray, y: np.ndarray, n_classes: int, normalize: bool = False) -> ClassStatistics:
        """Statistics of one chunk of features ``X`` (n, D) with labels ``y`` in [0, C);
        ``normalize``: of its L2-normalized rows (``l2_normalize(X)``, the same numbers).

        The chunk's scatter is computed in X's dtype (float32 BLAS for float32 input) and
        returned in float64.
        """
        counts = np.bincount(y, minlength=n_classes)
        if X.dtype not in (np.float32, np.float64):
            X = l2_normalize(X) if normalize else X
            sums = _class_sums(X, y, counts, n_classes)
            centred = X - (sums / np.maximum(counts, 1)[:, None].astype(X.dtype))[y]
        else:
            # One buffer of X's size holds the normalized, then the centred rows, filled in row
            # blocks: the same numbers as l2_normalize(X) - means[y] without their (n, D) temporaries.
            centred = np.empty_like(X, order="C")
            if normalize:
                for start in range(0, X.shape[0], ROW_BLOCK):
                    block = X[start:start + ROW_BLOCK]
                    norms = np.linalg.norm(block, axis=1, keepdims=True)
                    norms[norms == 0] = 1
                    np.divide(block, norms, out=centred[start:start + ROW_BLOCK])
            else:
                centred[...] = X
            sums = _class_sums(centred, y, counts, n_classes)
            chunk_means = sums / np.maximum(counts, 1)[:, None].astype(X.dtype)
            for start in range(0, X.shape[0], ROW_BLOCK):
                part = centred[start:start + ROW_BLOCK]
                part -= chunk_means[y[start:start + ROW_BLOCK]]
        # NumPy's matmul computes A.T @ A of one buffer with BLAS syrk (one triangle: half the flops)
        return cls(counts.astype(np.int64), sums.astype(np.float64), (centred.T @ centred).astype(np.float64))

    def merge(self, other: ClassStatistics) -> ClassStatistics:
        """Pairwise merge (Chan et al.): counts and sums add; scatter adds plus, per class seen
        on both sides, n_a n_b / (n_a + n_b) (mean_a - mean_b)(mean_a - mean_b)^T. Returns self."""
        if other.sums.shape != self.sums.shape:
            raise InputError(f"cannot merge statistics of shape {other.sums.shape} into {self.sums.shape}")
        scatter = self.scatter + other.scatter
        both = (self.counts > 0) & (other.counts > 0)
        if both.any():
            n_a, n_b = self.counts[both].astype(np.float64), other.counts[both].astype(np.float64)
            delta = self.sums[both] / n_a[:, None] - other.sums[both] / n_b[:, None]
            weight = n_a * n_b / (n_a + n_b)
            scatter += delta.T @ (weight[:, None] * delta)
        self.counts = self.counts + other.counts
        self.sums = self.sums + other.sums
        self.scatter = scatter
        return self

    def grow(self, n_classes: int) -> ClassStatistics:
        """These statistics over ``n_classes`` >= the current number of classes (new classes have
        zero samples): what class-incremental fitting (``GDA.partial_fit``) merges new sessions into."""
        extra = int(n_classes) - self.counts.shape[0]
        if extra < 0:
            raise InputError(f"cannot shrink statistics of {self.counts.shape[0]} classes to {n_classes}")
        return ClassStatistics(np.concatenate([self.counts, np.zeros(extra, np.int64)]),
                               np.vstack([self.sums, np.zeros((extra, self.sums.shape[1]))]), self.scatter.copy())

    def update(self, X: np.ndarray, y: np.ndarray, normalize: bool = False) -> ClassStatistics:
        """Merge one chunk of rows (``normalize``: L2-normalized first) into these statistics; returns self."""
        return self.merge(ClassStatistics.of_chunk(X, y, self.counts.shape[0], normalize))


def class_statistics(chunks: Iterable[tuple[np.ndarray, np.ndarray]], n_classes: int,
                     n_features: int, normalize: bool = True) -> ClassStatistics:
    """Accumulate ClassStatistics over (X, y) chunks; ``normalize`` L2-normalizes rows first
    (what GDA does with CLIP features)."""
    stats = ClassStatistics.empty(n_classes, n_features)
    for X, y in chunks:
        X = np.asarray(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float32)
        stats.update(X, np.asarray(y, dtype=np.int64), normalize)
    return stats

"""TIP-X's image-to-image affinity through text (Udandarao et al., "SuS-X: Training-Free
Name-Only Transfer of Vision-Language Models", ICCV 2023, Sec. 3.2; official code
github.com/vishaal27/SuS-X, ``tipx.py``).

Each image is described by its distribution over the class texts, p(x) = softmax(x_n T_n^T / tau)
(tau = 0.5). A test image x and a support image s are compared by KL(p(x) || p(s)); the KL
matrix is min-max rescaled to the range of the image-image cosine affinities and negated, so a
small divergence becomes a large affinity.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvers._base.normalize import l2_normalize
from solvers._base.softmax import log_softmax


def class_log_distribution(X: np.ndarray, text_weights: np.ndarray, tau: float = 0.5) -> np.ndarray:
    """log softmax(x_n T_n^T / tau) per row, (n, C)."""
    T = l2_normalize(np.asarray(text_weights, dtype=np.float64))
    return log_softmax((l2_normalize(np.asarray(X, dtype=np.float64)) @ T.T) / tau)


def kl_matrix(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """KL(p_i || q_j) for every query row i and support row j, (n, m), from log-probabilities."""
    p = np.exp(log_p)
    return np.sum(p * log_p, axis=1, keepdims=True) - p @ log_q.T


@dataclass(frozen=True)
class MinMaxScale:
    """The affine map sending [kl_min, kl_max] onto [target_min, target_max] (the official
    ``scale_``), with the ranges frozen at fit time so a row's logits do not depend on its batch."""

    kl_min: float
    kl_max: float
    target_min: float
    target_max: float

    @classmethod
    def fit(cls, kl: np.ndarray, target: np.ndarray) -> MinMaxScale:
        """Ranges of a reference KL matrix and of the affinities it is mapped onto."""
        return cls(float(kl.min()), float(kl.max()), float(target.min()), float(target.max()))

    def __call__(self, kl: np.ndarray) -> np.ndarray:
        span = self.kl_max - self.kl_min
        unit = (kl - self.kl_min) / (span if span > 0 else 1.0)
        return unit * (self.target_max - self.target_min) + self.target_min

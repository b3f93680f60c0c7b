"""Numerically stable softmax and log-softmax over the class axis of a logit matrix."""
from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise log softmax of ``logits / temperature``, shifted by the row max so exp never overflows."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (rows sum to one)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)

"""Post-hoc OOD scores from a classifier's logits; higher = more in-distribution everywhere.

MSP (Hendrycks & Gimpel, ICLR 2017), max-logit (Hendrycks et al., ICML 2022), energy (Liu et al.,
NeurIPS 2020), negated softmax entropy, MCM (Ming et al., NeurIPS 2022) on cosine similarities,
and GEN (Liu, Lochman & Zach, CVPR 2023).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import logsumexp

from solvers._base.softmax import log_softmax, softmax
from solvers.errors import InputError


def _matrix(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 1:
        raise InputError(f"logits must be a 2-D (n_samples, n_classes) array, got shape {z.shape}")
    return z


def msp(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Maximum softmax probability of softmax(logits / T)."""
    return softmax(_matrix(logits), temperature).max(axis=1)


def max_logit(logits: np.ndarray) -> np.ndarray:
    """Largest logit of each row."""
    return _matrix(logits).max(axis=1)


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Negative free energy T * logsumexp(logits / T)."""
    return float(temperature) * logsumexp(_matrix(logits) / float(temperature), axis=1)


def neg_entropy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Negated Shannon entropy sum_c p_c log p_c of softmax(logits / T) (0 for a one-hot row)."""
    log_p = log_softmax(_matrix(logits), temperature)
    return np.sum(np.exp(log_p) * log_p, axis=1)


def neg_entropy_of_probabilities(probs: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Negated entropy of given probabilities (e.g. an ensemble's averaged softmax)."""
    p = np.asarray(probs, dtype=np.float64)
    return np.sum(p * np.log(np.clip(p, eps, 1.0)), axis=1)


def mcm(cosine: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """Maximum concept matching: max_c softmax(cos(x, t_c) / tau), tau = 1 (Ming et al., 2022)."""
    return softmax(_matrix(cosine), tau).max(axis=1)


def gen(logits: np.ndarray, gamma: float = 0.1, top_m: int = 100, temperature: float = 1.0) -> np.ndarray:
    """Negated generalized entropy -sum_{j in top-M} p_j^gamma (1 - p_j)^gamma over the M largest
    probabilities of softmax(logits / T) (Liu et al., CVPR 2023; gamma = 0.1, M = 100)."""
    p = softmax(_matrix(logits), temperature)
    m = min(int(top_m), p.shape[1])
    top = np.sort(p, axis=1)[:, -m:]
    return -np.sum(top ** gamma * (1.0 - top) ** gamma, axis=1)


def zero_shot_mcm(features: np.ndarray, text_weights: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """MCM of image features against class text embeddings: the cosine similarities of the
    L2-normalized rows and text weights, then ``mcm`` (Ming et al., NeurIPS 2022)."""
    from solvers._base.normalize import l2_normalize

    X = l2_normalize(np.asarray(features, dtype=np.float64))
    T = l2_normalize(np.asarray(text_weights, dtype=np.float64))
    if X.ndim != 2 or T.ndim != 2 or X.shape[1] != T.shape[1]:
        raise InputError(f"features {X.shape} and text weights {T.shape} must share their dimension")
    return mcm(X @ T.T, tau)


#: Score name -> function of logits, for tables such as `fs ood`.
LOGIT_SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "msp": msp,
    "max-logit": max_logit,
    "energy": energy,
    "entropy": neg_entropy,
    "gen": gen,
}

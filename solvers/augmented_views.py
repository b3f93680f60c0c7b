"""Few-shot features averaged over augmented views, as Tip-Adapter (Zhang et al., ECCV 2022)
and GDA (Wang et al., ICLR 2024) build their caches: each training image is encoded under
several random crops/flips and its feature is the mean over views, re-normalized."""
from __future__ import annotations

import numpy as np

from solvers.normalize import l2_normalize


def average_views(X: np.ndarray, views: np.ndarray) -> np.ndarray:
    """Mean of the plain feature X (N, D) and its augmented views (N, V, D), L2-normalized."""
    X, views = np.asarray(X, dtype=np.float32), np.asarray(views, dtype=np.float32)
    if views.ndim != 3 or views.shape[0] != X.shape[0] or views.shape[2] != X.shape[1]:
        raise ValueError(f"views of shape {views.shape} do not match features of shape {X.shape}")
    stacked = np.concatenate([l2_normalize(X)[:, None], l2_normalize(views.reshape(-1, X.shape[1])).reshape(views.shape)],
                             axis=1)
    return l2_normalize(stacked.mean(axis=1))

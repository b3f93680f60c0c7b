"""Few-shot training sets built from augmented views, as the official recipes build their caches.

Each training image is encoded under V random augmentations (``fs extract --views V``: random
resized crop, scale 0.5-1, and horizontal flip). Two official recipes use them differently:

- ``"samples"`` (GDA, Wang et al., ICLR 2024, github.com/mrflogs/ICLR24): every view is a
  training row of its own (N = V x shots x classes rows; GDA's shrinkage uses that N); the
  centre-crop feature is not used.
- ``"mean"`` (Tip-Adapter, Zhang et al., ECCV 2022, github.com/gaopengcuhk/Tip-Adapter): each
  image's key is the mean of its V view features, then L2-normalized; the centre-crop feature
  is not used. The official code averages the raw (unnormalized) encoder outputs; a store keeps
  L2-normalized views, so without their raw norms the mean is over normalized views (the same
  direction when the views' norms are equal, a slightly different one otherwise); given the
  norms it is the official mean exactly.
"""
from __future__ import annotations

import numpy as np

from solvers._base.normalize import l2_normalize
from solvers.errors import InputError

VIEWS_AS = ("samples", "mean")


def _check_views(views: np.ndarray, n_rows: int | None = None) -> np.ndarray:
    views = np.asarray(views)
    if views.ndim != 3 or views.shape[1] < 1 or (n_rows is not None and views.shape[0] != n_rows):
        expected = "(N, V, D)" if n_rows is None else f"({n_rows}, V, D)"
        raise InputError(f"views must be an {expected} array of V >= 1 views per row, got shape {views.shape}")
    return views


def views_as_samples(views: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every view a row: features (N * V, D), image by image (row i's views are rows i*V ..
    i*V + V - 1), and each image's label repeated V times."""
    y = np.asarray(y)
    views = _check_views(views, y.shape[0])
    n, v, d = views.shape
    return views.reshape(n * v, d), np.repeat(y, v)


def mean_of_views(views: np.ndarray, norms: np.ndarray | None = None) -> np.ndarray:
    """Each row's views averaged, then L2-normalized (N, D). With ``norms`` (N, V), the raw
    norms of unit-row views, the raw features views * norms are averaged: exactly the official
    Tip-Adapter key."""
    views = _check_views(views).astype(np.float64)
    if norms is not None:
        norms = np.asarray(norms, dtype=np.float64)
        if norms.shape != views.shape[:2] or not np.all(np.isfinite(norms)):
            raise InputError(f"norms must be a finite {views.shape[:2]} array, got shape {norms.shape}")
        views = views * norms[:, :, None]
    return l2_normalize(views.mean(axis=1)).astype(np.float32)


def augmented_training_set(views: np.ndarray, y: np.ndarray, views_as: str,
                           norms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of a few-shot training set from its rows' views, by ``views_as``
    ("samples" or "mean", see the module docstring); ``norms`` (N, V) as ``mean_of_views``."""
    if views_as == "samples":
        return views_as_samples(views, y)
    if views_as == "mean":
        y = np.asarray(y)
        return mean_of_views(_check_views(views, y.shape[0]), norms), y
    raise InputError(f"views_as must be one of {VIEWS_AS}, got {views_as!r}")


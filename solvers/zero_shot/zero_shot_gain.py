"""The gain of a classifier over zero-shot CLIP on the same rows, with its paired standard error,
so a report claims a gain only where it exceeds the noise (label-free adaptation, AMU)."""
from __future__ import annotations

from typing import Any

import numpy as np

from solvers.zero_shot.zero_shot import zero_shot_logits


def gain_over_zero_shot(predicted: np.ndarray, X_clip: np.ndarray, y: np.ndarray, text_weights: np.ndarray,
                        logit_scale: float = 100.0) -> dict[str, Any]:
    """Zero-shot accuracy of ``text_weights`` on ``X_clip``, the gain of ``predicted`` over it, the
    paired standard error std(d) / sqrt(n) of the per-row difference d of correctness (ddof 1),
    and ``gain_significant``: the gain is positive and larger than two standard errors."""
    y = np.asarray(y)
    right = np.asarray(predicted) == y
    zero = zero_shot_logits(np.asarray(X_clip, np.float64), text_weights, logit_scale).argmax(axis=1) == y
    diff = right.astype(np.float64) - zero.astype(np.float64)
    se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else float("inf")
    gain = float(diff.mean())
    return {"zero_shot_accuracy": float(zero.mean()), "gain": gain, "gain_se": se,
            "gain_significant": bool(gain > 0 and gain > 2 * se)}

"""Hyper-parameter selection on a validation split (never the test split): try each candidate,
keep the one with the best validation accuracy, earliest candidate on ties."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def select_by_accuracy(candidates: Sequence[Any], logits_for: Callable[[Any], np.ndarray],
                       y_val: np.ndarray) -> tuple[Any, list[float]]:
    """Return (best candidate, validation accuracy of every candidate in order).

    ``logits_for(candidate)`` gives validation logits; only ``y_val`` is read as labels.
    """
    scores = [float(np.mean(np.argmax(logits_for(c), axis=1) == y_val)) for c in candidates]
    return candidates[int(np.argmax(scores))], scores

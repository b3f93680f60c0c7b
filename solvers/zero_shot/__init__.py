"""Zero-shot CLIP classification and the gain of other classifiers over it."""
from __future__ import annotations

from solvers.zero_shot.zero_shot import ZeroShot, zero_shot_logits
from solvers.zero_shot.zero_shot_gain import gain_over_zero_shot

__all__ = ["ZeroShot", "gain_over_zero_shot", "zero_shot_logits"]

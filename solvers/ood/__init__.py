"""Out-of-distribution scores from logits and prompt-based anomaly detection."""
from __future__ import annotations

from solvers.ood.anomaly import PromptAnomalyDetector, anomaly_metrics
from solvers.ood.scores import (
    energy,
    gen,
    max_logit,
    mcm,
    msp,
    neg_entropy,
    neg_entropy_of_probabilities,
    zero_shot_mcm,
)

__all__ = [
    "PromptAnomalyDetector", "anomaly_metrics", "energy", "gen", "max_logit", "mcm", "msp", "neg_entropy",
    "neg_entropy_of_probabilities", "zero_shot_mcm"
]

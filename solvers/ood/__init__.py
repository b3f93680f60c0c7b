"""Out-of-distribution scores from logits and prompt-based anomaly detection."""
from __future__ import annotations

from solvers.ood.anomaly import text_prototype, PromptAnomalyDetector, anomaly_metrics
from solvers.ood.scores import msp, max_logit, energy, neg_entropy, neg_entropy_of_probabilities, mcm, gen, zero_shot_mcm

__all__ = ["PromptAnomalyDetector", "anomaly_metrics", "energy", "gen", "max_logit", "mcm", "msp", "neg_entropy", "neg_entropy_of_probabilities", "text_prototype", "zero_shot_mcm"]

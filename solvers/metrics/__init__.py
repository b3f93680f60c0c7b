"""Evaluation metrics on arrays: accuracy, calibration, OOD detection, retrieval. The one place
featurestore computes metrics; their names are ``top1``, ``top5``, ``balanced_accuracy``, ``ece``,
``nll`` (classification), ``auroc``, ``fpr95``, ``aupr_in``, ``aupr_out`` (OOD) and ``recall@K``
(retrieval)."""
from __future__ import annotations

from solvers.metrics.classification import (
    CLASSIFICATION_METRICS,
    balanced_accuracy,
    classification_metrics,
    ece,
    logit_metrics,
    nll,
    per_class_accuracy,
    reliability_bins,
    stable_positions,
    top5_applies,
    topk_accuracy,
)
from solvers.metrics.ood import OOD_METRICS, aupr_in, aupr_out, auroc, fpr_at_tpr, ood_metrics, roc_points
from solvers.metrics.retrieval import clip_score, image_to_text_recall, modality_gap, text_to_image_recall

__all__ = [
    "CLASSIFICATION_METRICS", "OOD_METRICS", "aupr_in", "aupr_out", "auroc", "balanced_accuracy",
    "classification_metrics", "clip_score", "ece", "fpr_at_tpr", "image_to_text_recall", "logit_metrics",
    "modality_gap", "nll", "ood_metrics", "per_class_accuracy", "reliability_bins", "roc_points", "stable_positions",
    "text_to_image_recall", "top5_applies", "topk_accuracy"
]

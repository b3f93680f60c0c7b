"""Evaluation metrics on arrays: accuracy, calibration, OOD detection, retrieval."""
from __future__ import annotations

from solvers.metrics.classification import stable_positions, topk_accuracy, per_class_accuracy, balanced_accuracy, reliability_bins, ece, nll, logit_metrics, auroc, fpr_at_tpr, ood_metrics, aupr_in, aupr_out
from solvers.metrics.retrieval import image_to_text_recall, text_to_image_recall, clip_score, modality_gap

__all__ = ["aupr_in", "aupr_out", "auroc", "balanced_accuracy", "clip_score", "ece", "fpr_at_tpr", "image_to_text_recall", "logit_metrics", "modality_gap", "nll", "ood_metrics", "per_class_accuracy", "reliability_bins", "stable_positions", "text_to_image_recall", "topk_accuracy"]

"""Choosing what a fit uses: few-shot draws, augmented-view training sets, validation search, temperature scaling."""
from __future__ import annotations

from solvers.model_selection.augmented_views import (
    augmented_training_set,
    mean_of_views,
    views_as_samples,
)
from solvers.model_selection.fewshot import fewshot_split
from solvers.model_selection.temperature_scaling import calibrate, fit_temperature
from solvers.model_selection.validation import select_by_accuracy

__all__ = [
    "augmented_training_set", "calibrate", "fewshot_split", "fit_temperature", "mean_of_views",
    "select_by_accuracy", "views_as_samples"
]

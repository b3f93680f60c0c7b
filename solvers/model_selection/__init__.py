"""Choosing what a fit uses: few-shot draws, augmented-view training sets, validation search, temperature scaling."""
from __future__ import annotations

from solvers.model_selection.augmented_views import views_as_samples, mean_of_views, augmented_training_set, average_views
from solvers.model_selection.fewshot import fewshot_split
from solvers.model_selection.temperature_scaling import nll_at_temperature, fit_temperature, calibrate, bound_message
from solvers.model_selection.validation import select_by_accuracy

__all__ = ["augmented_training_set", "average_views", "bound_message", "calibrate", "fewshot_split", "fit_temperature", "mean_of_views", "nll_at_temperature", "select_by_accuracy", "views_as_samples"]

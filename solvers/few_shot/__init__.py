"""Few-shot classifiers fitted on K labelled rows per class: GDA, linear probe, Tip-Adapter, kNN, AMU."""
from __future__ import annotations

from solvers.few_shot.amu import AMU
from solvers.few_shot.class_incremental import fscil_table
from solvers.few_shot.gda import GDA, shrinkage_precision
from solvers.few_shot.knn import KNN
from solvers.few_shot.linear_probe import LinearProbe
from solvers.few_shot.logistic_lbfgs import LogisticFit, fit_logistic
from solvers.few_shot.sufficient_statistics import ClassStatistics, class_statistics
from solvers.few_shot.tip_adapter import TipAdapter, linear_grid, resolve_search_scale

__all__ = [
    "AMU", "GDA", "KNN", "ClassStatistics", "LinearProbe", "LogisticFit", "TipAdapter", "class_statistics",
    "fit_logistic", "fscil_table", "linear_grid", "resolve_search_scale", "shrinkage_precision"
]

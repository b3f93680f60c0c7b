"""Adaptation on unlabelled rows from zero-shot pseudo-labels: unsupervised GDA and label-free adaptation."""
from __future__ import annotations

from solvers.unlabelled.label_free import pseudo_label_rows, LabelFree
from solvers.unlabelled.unsupervised_gda import confident_per_class, UnsupervisedGDA

__all__ = ["LabelFree", "UnsupervisedGDA", "confident_per_class", "pseudo_label_rows"]

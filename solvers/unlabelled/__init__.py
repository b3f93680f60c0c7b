"""Adaptation on unlabelled rows from zero-shot pseudo-labels: unsupervised GDA and label-free adaptation."""
from __future__ import annotations

from solvers.unlabelled._pseudo_labels import pseudo_label_rows
from solvers.unlabelled.label_free import LabelFree
from solvers.unlabelled.unsupervised_gda import UnsupervisedGDA

__all__ = ["LabelFree", "UnsupervisedGDA", "pseudo_label_rows"]

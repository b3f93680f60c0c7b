"""Classification by description: descriptor banks, differential descriptions (FuDD), description selection,
PerceptionCLIP."""
from __future__ import annotations

from solvers.descriptions.description_selection import DescriptionSelection
from solvers.descriptions.descriptors import DescriptorClassifier
from solvers.descriptions.fudd import DifferentialDescriptions
from solvers.descriptions.perception_clip import PerceptionCLIP

__all__ = ["DescriptionSelection", "DescriptorClassifier", "DifferentialDescriptions", "PerceptionCLIP"]

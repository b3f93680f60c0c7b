"""Classifiers built on a retrieved or generated support set: TIP-X (SuS-X), CapS-Adapter, REAL-Prompt
and REAL-Linear."""
from __future__ import annotations

from solvers.support_sets.balanced_retrieval import balanced_rows
from solvers.support_sets.caps_adapter import CapSAdapter, caption_support_positions
from solvers.support_sets.real_linear import RealLinear
from solvers.support_sets.real_prompt import RealPrompt
from solvers.support_sets.tip_x import TipX

__all__ = ["CapSAdapter", "RealLinear", "RealPrompt", "TipX", "balanced_rows", "caption_support_positions"]

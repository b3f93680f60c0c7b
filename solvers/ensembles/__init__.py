"""Ensembles of fitted solvers or imported logits, and COOkeD's OOD ensemble."""
from __future__ import annotations

from solvers.ensembles.cooked import cooked_ensemble, cooked_probabilities, cooked_score, cooked_scores
from solvers.ensembles.ensemble import Ensemble, simplex_grid
from solvers.ensembles.fixed_logits import FixedLogits

__all__ = [
    "Ensemble", "FixedLogits", "cooked_ensemble", "cooked_probabilities", "cooked_score", "cooked_scores",
    "simplex_grid"
]

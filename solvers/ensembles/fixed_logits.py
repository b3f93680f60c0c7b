"""Precomputed logits as a solver: another classifier's outputs (e.g. a closed-world ResNet
imported with ``fs import-logits``) joining CLIP solvers in an ensemble (COOkeD, Liberatori et
al., 2025). The logits are row-aligned with one split, not a function of the features."""
from __future__ import annotations

import numpy as np

from solvers._base.solver import Solver
from solvers.errors import InputError


class FixedLogits(Solver):
    """Returns stored (N, C) ``logits`` for the N rows they were computed on.

    ``kind="probabilities"`` marks softmax outputs: ``class_logits`` returns their log
    (clipped at 1e-12), so softmax gives the probabilities back. ``source`` names where they
    came from (the imported classifier's name). ``class_logits(X)`` only checks that X has
    the same N rows (the features of the same split, in store order).
    """

    fit_input = "none"
    _data_params = ("logits",)

    def __init__(self, logits: np.ndarray | None = None, kind: str = "logits", source: str = "",
                 temperature: float = 1.0) -> None:
        self.logits = logits
        self.kind = kind
        self.source = source
        self.temperature = temperature

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None,
            X_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> FixedLogits:
        """Validate the stored matrix; nothing is learned."""
        if self.kind not in ("logits", "probabilities"):
            raise InputError(f"kind must be 'logits' or 'probabilities', not {self.kind!r}")
        z = np.asarray(self.logits, dtype=np.float64) if self.logits is not None else None
        if z is None or z.ndim != 2 or not np.isfinite(z).all():
            raise InputError("FixedLogits needs a finite 2-D (n_rows, n_classes) logits matrix")
        if self.kind == "probabilities" and (z.min() < 0 or np.abs(z.sum(axis=1) - 1).max() > 1e-3):
            raise InputError("probabilities must be non-negative and sum to one per row")
        self._set_classes(z.shape[1], 0 if X is None else np.asarray(X).shape[1])
        return self

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """The stored logits (or log-probabilities); X must have as many rows."""
        self._check_fitted()
        z = np.asarray(self.logits, dtype=np.float64)
        if len(X) != z.shape[0]:
            raise InputError(f"{self.source or 'fixed'} logits cover {z.shape[0]} rows, not {len(X)}: "
                             "they only predict the split they were imported for")
        return np.log(np.clip(z, 1e-12, 1.0)) if self.kind == "probabilities" else z

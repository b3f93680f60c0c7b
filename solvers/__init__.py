"""Closed-form, training-free solvers on cached CLIP embeddings (NumPy in, logits out).

Names are resolved lazily (PEP 562) so ``import solvers`` imports neither scikit-learn nor
faiss; each solver module imports only what it needs.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Solver": "solvers.base",
    "ZeroShot": "solvers.zeroshot",
    "GDA": "solvers.gda",
    "LinearProbe": "solvers.linear_probe",
    "TipAdapter": "solvers.tip_adapter",
    "KNN": "solvers.knn",
    "UnsupervisedGDA": "solvers.unsupervised_gda",
    "AMU": "solvers.amu",
    "LabelFree": "solvers.label_free",
    "PromptAnomalyDetector": "solvers.anomaly",
    "ClassStatistics": "solvers.class_statistics",
    "class_statistics": "solvers.class_statistics",
    "fewshot_split": "solvers.fewshot",
    "save_npz": "solvers.persistence",
    "load_npz": "solvers.persistence",
    "save_to_store": "solvers.persistence",
    "load_from_store": "solvers.persistence",
    "SOLVERS": "solvers.registry",
    "describe": "solvers.registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'solvers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

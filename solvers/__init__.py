"""Closed-form, training-free solvers on cached CLIP embeddings (NumPy in, logits out).

Names are resolved lazily (PEP 562) so ``import solvers`` imports neither scikit-learn nor
faiss; each solver module imports only what it needs.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Solver": "solvers._base.solver",
    "ZeroShot": "solvers.zero_shot.zero_shot",
    "GDA": "solvers.few_shot.gda",
    "LinearProbe": "solvers.few_shot.linear_probe",
    "TipAdapter": "solvers.few_shot.tip_adapter",
    "KNN": "solvers.few_shot.knn",
    "UnsupervisedGDA": "solvers.unlabelled.unsupervised_gda",
    "AMU": "solvers.few_shot.amu",
    "LabelFree": "solvers.unlabelled.label_free",
    "PromptAnomalyDetector": "solvers.ood.anomaly",
    "ClassStatistics": "solvers.few_shot.sufficient_statistics",
    "class_statistics": "solvers.few_shot.sufficient_statistics",
    "fewshot_split": "solvers.model_selection.fewshot",
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

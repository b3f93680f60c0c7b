"""Solver names for the CLI (``fs solve <name>``) and a description of each solver's
hyper-parameters for ``fs solve --list``. Classes are imported only when asked for."""
from __future__ import annotations

import importlib
import inspect
from typing import Any

# CLI name -> (module, class name)
_LOCATIONS = {
    "zeroshot": ("solvers.zeroshot", "ZeroShot"),
    "gda": ("solvers.gda", "GDA"),
    "linear-probe": ("solvers.linear_probe", "LinearProbe"),
    "tip-adapter": ("solvers.tip_adapter", "TipAdapter"),
    "knn": ("solvers.knn", "KNN"),
    "unsupervised-gda": ("solvers.unsupervised_gda", "UnsupervisedGDA"),
    "real-prompt": ("solvers.real_prompt", "RealPrompt"),
    "real-linear": ("solvers.real_linear", "RealLinear"),
    "tip-x": ("solvers.tipx", "TipX"),
    "caps-adapter": ("solvers.caps_adapter", "CapSAdapter"),
    "descriptors": ("solvers.descriptions", "DescriptorClassifier"),
    "fudd": ("solvers.differential_descriptions", "DifferentialDescriptions"),
    "description-selection": ("solvers.description_selection", "DescriptionSelection"),
    "perceptionclip": ("solvers.perception_clip", "PerceptionCLIP"),
}
NAMES = tuple(_LOCATIONS)
# Solvers that are built by composition (not by `fs solve`) but load back from saved state.
_COMPOSED = {
    "Ensemble": "solvers.ensemble",
    "FixedLogits": "solvers.fixed_logits",
}


def _load(name: str) -> type:
    if name not in _LOCATIONS:
        raise ValueError(f"unknown solver {name!r}; choose from {', '.join(NAMES)}")
    module, cls = _LOCATIONS[name]
    return getattr(importlib.import_module(module), cls)


class _LazySolvers(dict):
    """A name -> class dict that imports each solver module on first access."""

    def __init__(self) -> None:
        super().__init__({name: None for name in NAMES})

    def __getitem__(self, name: str) -> type:
        if name not in _LOCATIONS:
            raise KeyError(name)
        if super().__getitem__(name) is None:
            super().__setitem__(name, _load(name))
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def values(self):  # type: ignore[override]
        return [self[name] for name in NAMES]

    def items(self):  # type: ignore[override]
        return [(name, self[name]) for name in NAMES]


SOLVERS: dict[str, type] = _LazySolvers()


def solver_class(name: str) -> type:
    """Class for a CLI name ("gda") or a class name ("GDA")."""
    if name in _LOCATIONS:
        return SOLVERS[name]
    for key, (_, cls) in _LOCATIONS.items():
        if cls == name:
            return SOLVERS[key]
    if name in _COMPOSED:
        return getattr(importlib.import_module(_COMPOSED[name]), name)
    raise ValueError(f"unknown solver {name!r}; choose from {', '.join(NAMES)}")


def describe() -> dict[str, dict[str, Any]]:
    """For each solver name: its class, one-line doc and constructor params with defaults."""
    out = {}
    for name in NAMES:
        cls = SOLVERS[name]
        params = {p.name: (None if p.default is inspect.Parameter.empty else p.default)
                  for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"}
        doc = (inspect.getdoc(cls) or "").split("\n")[0]
        out[name] = {"class": cls.__name__, "doc": doc, "params": params}
    return out

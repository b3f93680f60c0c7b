"""Solver names for the CLI (``fs solve <name>``) and a description of each solver's
hyper-parameters for ``fs solve --list``. Classes are imported only when asked for."""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

from solvers.errors import InputError

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
    "amu": ("solvers.amu", "AMU"),
    "label-free": ("solvers.label_free", "LabelFree"),
}
NAMES = tuple(_LOCATIONS)
# Solvers that are built by composition (not by `fs solve`) but load back from saved state.
_COMPOSED = {
    "Ensemble": "solvers.ensemble",
}


def _load(name: str) -> type:
    if name not in _LOCATIONS:
        raise InputError(f"unknown solver {name!r}; choose from {', '.join(NAMES)}")
    module, cls = _LOCATIONS[name]
    return getattr(importlib.import_module(module), cls)


class _LazySolvers(Mapping):
    """A read-only name -> class mapping that imports each solver module on first access
    (copying it, ``dict(SOLVERS)``, imports them all and holds classes, never placeholders)."""

    def __init__(self) -> None:
        self._loaded: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        if name not in _LOCATIONS:
            raise KeyError(name)
        if name not in self._loaded:
            self._loaded[name] = _load(name)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


SOLVERS: Mapping[str, type] = _LazySolvers()


def solver_class(name: str) -> type:
    """Class for a CLI name ("gda") or a class name ("GDA")."""
    if name in _LOCATIONS:
        return SOLVERS[name]
    for key, (_, cls) in _LOCATIONS.items():
        if cls == name:
            return SOLVERS[key]
    if name in _COMPOSED:
        return getattr(importlib.import_module(_COMPOSED[name]), name)
    raise InputError(f"unknown solver {name!r}; choose from {', '.join(NAMES)}")


def summary(cls: type) -> str:
    """The first paragraph of a class's docstring as one line (never cut mid-sentence)."""
    paragraph = (inspect.getdoc(cls) or "").split("\n\n")[0]
    return " ".join(paragraph.split())


def describe() -> dict[str, dict[str, Any]]:
    """For each solver name: its class, the first paragraph of its doc and its hyper-parameters
    with defaults (constructor parameters that carry data, ``_data_params``, are left out)."""
    out = {}
    for name in NAMES:
        cls = SOLVERS[name]
        data = set(getattr(cls, "_data_params", ()))
        params = {p.name: (None if p.default is inspect.Parameter.empty else p.default)
                  for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name != "self" and p.name not in data}
        out[name] = {"class": cls.__name__, "doc": summary(cls), "params": params}
    return out

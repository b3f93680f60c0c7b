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
    "zero-shot": ("solvers.zero_shot.zero_shot", "ZeroShot"),
    "gda": ("solvers.few_shot.gda", "GDA"),
    "linear-probe": ("solvers.few_shot.linear_probe", "LinearProbe"),
    "tip-adapter": ("solvers.few_shot.tip_adapter", "TipAdapter"),
    "knn": ("solvers.few_shot.knn", "KNN"),
    "unsupervised-gda": ("solvers.unlabelled.unsupervised_gda", "UnsupervisedGDA"),
    "real-prompt": ("solvers.support_sets.real_prompt", "RealPrompt"),
    "real-linear": ("solvers.support_sets.real_linear", "RealLinear"),
    "tip-x": ("solvers.support_sets.tip_x", "TipX"),
    "caps-adapter": ("solvers.support_sets.caps_adapter", "CapSAdapter"),
    "descriptors": ("solvers.descriptions.descriptors", "DescriptorClassifier"),
    "fudd": ("solvers.descriptions.fudd", "DifferentialDescriptions"),
    "description-selection": ("solvers.descriptions.description_selection", "DescriptionSelection"),
    "perception-clip": ("solvers.descriptions.perception_clip", "PerceptionCLIP"),
    "amu": ("solvers.few_shot.amu", "AMU"),
    "label-free": ("solvers.unlabelled.label_free", "LabelFree"),
}
NAMES = tuple(_LOCATIONS)
# Solvers that are built by composition (not by `fs solve`) but load back from saved state.
_COMPOSED = {
    "Ensemble": "solvers.ensembles.ensemble",
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

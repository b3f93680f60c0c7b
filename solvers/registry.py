"""Solver names for the CLI (``fs solve <name>``) and a description of each solver's
hyper-parameters for ``fs solve --list``. Classes are imported only when asked for."""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import solvers
from solvers._base.lazy import LazyAttributes
from solvers.errors import InputError

if TYPE_CHECKING:
    from solvers._base.solver import Solver

# CLI name -> class name (exported by ``solvers``)
_CLASSES = {
    "zero-shot": "ZeroShot",
    "gda": "GDA",
    "linear-probe": "LinearProbe",
    "tip-adapter": "TipAdapter",
    "knn": "KNN",
    "unsupervised-gda": "UnsupervisedGDA",
    "real-prompt": "RealPrompt",
    "real-linear": "RealLinear",
    "tip-x": "TipX",
    "caps-adapter": "CapSAdapter",
    "descriptors": "DescriptorClassifier",
    "fudd": "DifferentialDescriptions",
    "description-selection": "DescriptionSelection",
    "perception-clip": "PerceptionCLIP",
    "amu": "AMU",
    "label-free": "LabelFree",
}
NAMES = tuple(_CLASSES)
# Solvers that are built by composition (not by `fs solve`) but load back from saved state.
_COMPOSED = ("Ensemble",)

#: CLI name -> solver class, each imported on first access.
SOLVERS: Mapping[str, type[Solver]] = LazyAttributes(
    {name: solvers._EXPORTS.location(cls) for name, cls in _CLASSES.items()})


def solver_class(name: str) -> type[Solver]:
    """Class for a CLI name ("gda") or a class name ("GDA")."""
    if name in _CLASSES:
        return SOLVERS[name]
    if name in _CLASSES.values() or name in _COMPOSED:
        cls: type[Solver] = getattr(solvers, name)
        return cls
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
                  for p in inspect.signature(cls).parameters.values()
                  if p.name not in data}
        out[name] = {"class": cls.__name__, "doc": summary(cls), "params": params}
    return out

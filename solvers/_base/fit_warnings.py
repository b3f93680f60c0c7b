"""Warnings a fit raises when its result is degenerate or its search may be incomplete, and the
``fit_warnings_`` attribute that records them so callers (``fs solve --json``) can report them.

No silent fallbacks: a hyper-parameter chosen on the edge of its grid, a covariance replaced by
the identity, a kNN vote that is the same for every query, a solver that did not converge: each
is a ``SolverWarning`` and a line in ``fit_warnings_``.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any


class SolverWarning(UserWarning):
    """A fitted solver is degenerate, fell back to a simpler model, or its search hit a limit."""


def start_warnings(solver: Any) -> None:
    """Reset ``solver.fit_warnings_`` at the start of a fit."""
    solver.fit_warnings_ = []


def record_warning(solver: Any, message: str) -> None:
    """Warn (``SolverWarning``) and append the message to ``solver.fit_warnings_``."""
    if not isinstance(getattr(solver, "fit_warnings_", None), list):
        solver.fit_warnings_ = []
    solver.fit_warnings_.append(message)
    warnings.warn(f"{type(solver).__name__}: {message}", SolverWarning, stacklevel=3)


def grid_edge_message(name: str, grid: Sequence[float], chosen: float, hint: str = "") -> str | None:
    """A message when ``chosen`` is the smallest or largest of a grid of more than one value, else None."""
    values = sorted(float(v) for v in grid)
    if len(set(values)) < 2:
        return None
    if float(chosen) == values[-1]:
        edge = "upper"
    elif float(chosen) == values[0]:
        edge = "lower"
    else:
        return None
    return (f"{name} = {float(chosen):.6g} is the {edge} edge of its search grid "
            f"[{values[0]:.6g}, {values[-1]:.6g}]; the best value may lie beyond it"
            + (f" ({hint})" if hint else ""))


def warn_on_grid_edge(solver: Any, name: str, grid: Sequence[float], chosen: float, hint: str = "") -> None:
    """``record_warning`` when ``chosen`` is the first or last point of ``grid``."""
    message = grid_edge_message(name, grid, chosen, hint)
    if message is not None:
        record_warning(solver, message)

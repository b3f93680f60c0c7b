"""featurestore installs four top-level import names: featurestore, cli, solvers and workflows.
PyPI holds other distributions named ``solvers`` and ``workflows``, and any project may have a
local ``cli`` module; whichever comes first on ``sys.path`` (or, for an editable install, before
setuptools' finder) is imported. This check finds such a shadow before anything else imports
from it, so `fs` says which file took the name instead of failing somewhere inside."""
from __future__ import annotations

import importlib.util
from pathlib import Path

OWN = ("cli", "solvers", "workflows")


def foreign_packages() -> list[tuple[str, str]]:
    """(name, where it is imported from) for each of cli/solvers/workflows that does not sit
    beside the ``featurestore`` package (a source checkout or site-packages alike)."""
    spec = importlib.util.find_spec("featurestore")
    if spec is None or spec.origin is None:
        return []
    root = Path(spec.origin).resolve().parent.parent
    found = []
    for name in OWN:
        other = importlib.util.find_spec(name)
        where = other.origin if other is not None and other.origin else (
            next(iter(other.submodule_search_locations or []), "?") if other is not None else None)
        if where is None:
            found.append((name, "nowhere (not installed)"))
        elif Path(where).resolve().parent.parent != root and Path(where).resolve().parent != root:
            found.append((name, str(where)))
    return found

"""Names imported on first use: the one lazy-import mechanism of ``solvers``.

``import solvers`` must stay cheap (no SciPy, scikit-learn or faiss), yet the package exports
every solver and the registry maps command names to classes. Both read a ``LazyAttributes``
table: name -> (module, attribute), imported when the name is first looked up.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any


class LazyAttributes(Mapping[str, Any]):
    """A read-only name -> object mapping; each object is imported from its module on first
    access (``dict(table)`` imports them all and holds the objects)."""

    def __init__(self, locations: Mapping[str, tuple[str, str]]) -> None:
        self._locations = dict(locations)
        self._loaded: dict[str, Any] = {}

    def location(self, name: str) -> tuple[str, str]:
        """(module, attribute) of ``name``."""
        return self._locations[name]

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            module, attribute = self._locations[name]
            self._loaded[name] = getattr(importlib.import_module(module), attribute)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._locations)

    def __len__(self) -> int:
        return len(self._locations)

    def module_getattr(self, module: str) -> Callable[[str], Any]:
        """A PEP 562 ``__getattr__`` for ``module`` that serves this table's names."""

        def __getattr__(name: str) -> Any:
            if name in self._locations:
                return self[name]
            raise AttributeError(f"module {module!r} has no attribute {name!r}")

        return __getattr__

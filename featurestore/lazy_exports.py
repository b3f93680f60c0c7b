"""Package exports imported on first use (PEP 562), so that importing one module of a package
does not import all of its siblings (and their dependencies: tarfile, csv, the corpus readers ...).

A package lists its exports as ``{name: submodule}`` and sets
``__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)``; it also imports the same names under
``TYPE_CHECKING`` so type checkers see them (tests/test_import_paths.py checks both agree). An
export that cannot be imported raises its ImportError when it is first used, not later.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package`` that import ``name`` from
    ``package.<exports[name]>`` when it is first looked up (then keep it as a module attribute)."""
    table = dict(exports)

    def __getattr__(name: str) -> Any:
        submodule = table.get(name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{submodule}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__

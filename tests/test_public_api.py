"""The public API: ``solvers`` exports every registered solver (and Ensemble, FixedLogits, the
metrics, sampling, persistence, registry and errors), each family package's ``__all__``
resolves, and importing ``solvers`` stays cheap."""
from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import featurestore
import solvers
import workflows
from solvers.registry import NAMES, SOLVERS, solver_class


def test_every_registered_solver_is_exported_by_its_class_name():
    exported = set(solvers.__all__)
    for name in NAMES:
        cls = SOLVERS[name]
        assert cls.__name__ in exported, f"{name}: {cls.__name__} is not in solvers.__all__"
        assert getattr(solvers, cls.__name__) is cls
        assert solver_class(cls.__name__) is cls


def test_composed_solvers_metrics_sampling_and_persistence_are_exported():
    for name in ("Ensemble", "FixedLogits", "Solver", "logit_metrics", "auroc", "fewshot_split", "save_to_store",
                 "load_from_store", "solver_class", "InputError", "SolverWarning", "NotFittedError"):
        assert name in solvers.__all__ and getattr(solvers, name) is not None
    assert solver_class("Ensemble") is solvers.Ensemble


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        solvers.Nothing  # noqa: B018


def _packages(root):
    yield root
    for info in pkgutil.walk_packages(root.__path__, root.__name__ + "."):
        if info.ispkg:
            yield importlib.import_module(info.name)


@pytest.mark.parametrize("root", [solvers, featurestore, workflows], ids=lambda m: m.__name__)
def test_each_package_all_resolves_to_its_own_public_names(root):
    for package in _packages(root):
        for name in getattr(package, "__all__", ()):
            assert not name.startswith("_") or name == "__version__", f"{package.__name__} exports {name}"
            assert getattr(package, name, None) is not None, f"{package.__name__}.{name} does not resolve"


def test_import_solvers_imports_no_heavy_library():
    code = ("import sys, solvers; solvers.__all__; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'sklearn', 'faiss', 'torch', 'h5py'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_type_checkers_see_the_same_exports_as_the_lazy_table():
    """solvers/__init__.py imports every export under TYPE_CHECKING (so mypy types them) and
    resolves them lazily from its table at run time: both must name the same objects."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(solvers.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    static = {alias.name: (node.module, alias.name) for node in block.body if isinstance(node, ast.ImportFrom)
              for alias in node.names}
    assert static == {name: solvers._EXPORTS.location(name) for name in solvers.__all__}

"""What `fs solve gda` imports: only the modules its path needs (issue 26, goal 3: process start
to printed accuracy). Each module listed below was imported by that path before and is not needed
there; the test fails when an eager import brings one back. The packages that export their names
lazily (``featurestore.lazy_exports``) resolve every name, type checkers see the same names, and
an export whose module cannot be imported still raises ImportError when it is used."""
from __future__ import annotations

import ast
import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore

ROOT = Path(__file__).resolve().parents[1]

#: Not on the gda path, each with what used to import it there.
NOT_ON_GDA_PATH = [
    # libraries a solve never needs
    "torch", "open_clip", "timm", "faiss", "dask", "scipy", "sklearn", "pandas", "matplotlib", "PIL", "tqdm",
    # featurestore.text's __init__ -> real_prompts -> featurestore.corpus -> sources -> tarfile
    "featurestore.corpus", "featurestore.corpus.shards", "featurestore.text.real_prompts",
    "featurestore.text.descriptor_prompts", "featurestore.text.anomaly_prompts", "tarfile",
    # featurestore.datasets' __init__ -> every dataset reader -> featurestore.sources (csv, tarfile);
    # datasets.loaded -> importlib.resources -> tempfile, shutil, bz2, lzma
    "featurestore.sources", "featurestore.datasets.coop_split", "featurestore.datasets.torchvision_sets",
    "featurestore.datasets.extraction", "importlib.resources", "tempfile", "shutil", "bz2", "lzma", "csv",
    # featurestore.store.files -> ctypes.util (the fallback search for libhdf5)
    "ctypes.util",
    # np.unique without return_* (label and chunk lists) -> numpy.ma
    "numpy.ma",
    # workflows.inputs' __init__ -> pool and prompt-bank readers
    "workflows.inputs.pool", "workflows.inputs.prompt_banks",
    # featurestore.store's __init__ -> verification, consolidation, summary, virtual splits
    "featurestore.store.verify", "featurestore.store.shard_consolidation", "featurestore.store.summary",
    "featurestore.store.virtual_split",
]

#: On the path whatever the change (a check that the probe sees the modules a solve imports).
ON_GDA_PATH = ["h5py", "click", "featurestore.store.feature_store", "featurestore.text.banks",
               "workflows.inputs.solver_inputs", "solvers.few_shot.gda", "workflows.solve"]

LAZY_PACKAGES = ["featurestore.store", "featurestore.text", "featurestore.corpus", "workflows.inputs"]


def _store(path: Path) -> Path:
    """Six classes, train/val/test splits and a class bank: the path reads a text bank too."""
    rng = np.random.default_rng(0)
    names, key, d = ["a", "b", "c", "d", "e", "f"], "enc", 8
    with FeatureStore(path, mode="a") as store:
        store.ensure_encoder(key, {"model": "m", "weights": "none", "embed_dim": d})
        for split, n in (("train", 60), ("val", 30), ("test", 30)):
            y = np.arange(n) % len(names)
            store.add_rows(split, [f"{split}{i}" for i in range(n)], [""] * n, y.tolist(), classes=names)
            store.prepare_features(key, split, d)
            store.begin_appending()
            X = (np.eye(len(names), d)[y] + 0.3 * rng.standard_normal((n, d))).astype(np.float32)
            store.write_features(key, split, np.arange(n), X, np.ones(n, bool), [""] * n)
        store.put_text_bank(key, "train/simple", np.eye(len(names), d).astype(np.float32), names, kind="classes",
                            classes=names)
    return path


def _modules_after(argv: list[str]) -> tuple[str, set[str]]:
    """Run `fs ARGV` in a fresh interpreter: (its stdout, the modules it imported)."""
    code = ("import sys, json, runpy\n"
            f"sys.argv = ['fs', *{argv!r}]\n"
            "try:\n    runpy.run_module('cli.main', run_name='__main__')\n"
            "except SystemExit as stop:\n    assert not stop.code, stop.code\n"
            "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k != "FS_BLAS_THREADS"}  # that limit loads SciPy's BLAS
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    return done.stdout, set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("extra", [[], ["--val", "val", "--shots", "4", "--seeds", "1,2", "--json"]],
                         ids=["whole-train", "val-shots-seeds"])
def test_solve_gda_imports_only_what_its_path_needs(tmp_path, extra):
    path = _store(tmp_path / "s.h5")
    out, modules = _modules_after(["solve", "gda", "--store", str(path), "--train", "train", "--test", "test",
                                   *extra])
    assert "top1" in out or "test accuracy" in out  # it did solve
    assert [m for m in ON_GDA_PATH if m not in modules] == []
    assert sorted(m for m in NOT_ON_GDA_PATH if m in modules) == []


def _static_names(package: str) -> dict[str, str]:
    """name -> submodule of the package's ``if TYPE_CHECKING:`` imports."""
    tree = ast.parse(Path(str(importlib.import_module(package).__file__)).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    return {alias.name: node.module.rsplit(".", 1)[1] for node in block.body if isinstance(node, ast.ImportFrom)
            for alias in node.names if node.module}


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_lazy_exports_match_what_type_checkers_see(package):
    module = importlib.import_module(package)
    assert _static_names(package) == module._EXPORTS
    assert sorted(module.__all__) == sorted(module._EXPORTS)
    submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
    assert submodules.isdisjoint(module._EXPORTS)  # a submodule would shadow an export of its name
    assert set(module._EXPORTS) <= set(dir(module))
    for name, submodule in module._EXPORTS.items():
        assert getattr(module, name) is getattr(importlib.import_module(f"{package}.{submodule}"), name)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nothing'"):
        module.nothing  # noqa: B018


@pytest.mark.parametrize(("package", "name", "submodule"), [
    ("featurestore.corpus", "read_caption_shard", "featurestore.corpus.shards"),
    ("featurestore.store", "verify_store", "featurestore.store.verify"),
    ("featurestore.text", "real_prompt_bank", "featurestore.text.real_prompts"),
    ("workflows.inputs", "pool_features_at", "workflows.inputs.pool"),
])
def test_an_export_whose_module_fails_to_import_raises_import_error_when_used(package, name, submodule):
    code = (f"import sys\nsys.modules[{submodule!r}] = None  # as a missing or broken module\n"
            f"import {package} as package\n"
            "try:\n"
            f"    package.{name}\n"
            "except ImportError as exc:\n    print('ImportError', exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.startswith("ImportError") and submodule in out

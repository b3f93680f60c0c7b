"""Every notebook runs top to bottom (nbclient, a fresh kernel) on the tiny test model with random
weights saved to a checkpoint file, in a temporary work directory; any cell error fails."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_CONFIG, TINY_MODEL

KERNEL = "featurestore-tests"
NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One work directory for all notebooks, as a user's: later ones reuse the extracted store."""
    return tmp_path_factory.mktemp("notebooks")


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory) -> Path:
    """A Jupyter data dir whose kernel spec runs this interpreter, so notebooks use this
    environment whatever other `python3` kernels the machine has."""
    from ipykernel.kernelspec import write_kernel_spec

    root = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(path=str(root / "kernels" / KERNEL))
    return root



def test_notebooks_are_committed_without_outputs():
    import nbformat

    assert [p.name for p in NOTEBOOKS][:4] == ["01_quickstart.ipynb", "02_explore_features.ipynb",
                                              "03_ood.ipynb", "04_methods.ipynb"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        assert "FS_MODEL" in code[0].source and "parameters" in code[0].metadata.get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, workdir, jupyter_path, tiny_checkpoint, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    monkeypatch.setenv("FS_MODEL", TINY_MODEL)
    monkeypatch.setenv("FS_MODEL_CONFIG", str(TINY_CONFIG))
    monkeypatch.setenv("FS_PRETRAINED", str(tiny_checkpoint))
    monkeypatch.setenv("FS_DEVICE", "cpu")
    monkeypatch.setenv("FS_AUX_MODEL", "timm:test_efficientnet")  # 06's auxiliary encoder: tiny, random
    monkeypatch.setenv("FS_AUX_PRETRAINED", "random")
    monkeypatch.setenv("FS_WORKDIR", str(workdir))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=180, kernel_name=KERNEL, resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no picture"

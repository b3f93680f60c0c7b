"""Shared fixtures: a tiny open_clip model config with random weights saved to a checkpoint
file, so the real loading path (config + local checkpoint) runs in every test that encodes."""
from __future__ import annotations

from pathlib import Path

import pytest

TINY_CONFIG = Path(__file__).parent / "data" / "tiny-vit.json"
TINY_MODEL = "tiny-vit"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random tiny-vit weights (seeded) saved as a .pt state dict."""
    import open_clip
    import torch

    from featurestore.encoders import register_model_config

    register_model_config(TINY_CONFIG)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_MODEL)
    path = tmp_path_factory.mktemp("weights") / "tiny-vit.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tiny_checkpoint: Path):
    """The tiny model loaded through featurestore's loader from the checkpoint file."""
    from featurestore.encoders import load_encoder

    return load_encoder(TINY_MODEL, str(tiny_checkpoint), model_config=TINY_CONFIG, device="cpu")


@pytest.fixture
def fs_args(tiny_checkpoint: Path) -> list[str]:
    """`fs extract` arguments selecting the tiny model and its checkpoint."""
    return ["--model", TINY_MODEL, "--model-config", str(TINY_CONFIG), "--pretrained", str(tiny_checkpoint)]


@pytest.fixture(scope="session")
def killwrite_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/killwrite.c built as an LD_PRELOAD shim: SIGKILL before the K-th write to the store
    (``KILLWRITE_AT=K``), or count the writes (``KILLWRITE_COUNT=FILE``)."""
    import shutil
    import subprocess

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler for the write-level injector")
    out = tmp_path_factory.mktemp("shim") / "killwrite.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(Path(__file__).parent / "killwrite.c"),
                    "-ldl"], check=True)
    return out

"""Encoder loading through the real open_clip path: config file + local checkpoint."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from featurestore.encoders import encoder_key, load_encoder
from featurestore.errors import EncoderError
from tests.conftest import TINY_CONFIG, TINY_MODEL


def test_checkpoint_loads_the_saved_weights(tiny_checkpoint, tiny_encoder):
    import torch

    state = torch.load(tiny_checkpoint)
    loaded = tiny_encoder.model.state_dict()
    for name, value in state.items():
        assert torch.equal(loaded[name].cpu(), value), name
    sha = _tensor_digest(state)
    assert tiny_encoder.key == f"{TINY_MODEL}/sha256-{sha[:12]}"
    assert tiny_encoder.info["weights"] == f"sha256:{sha}"
    assert tiny_encoder.info["embed_dim"] == 32
    assert not any(p.requires_grad for p in tiny_encoder.model.parameters())
    assert not tiny_encoder.model.training


def _tensor_digest(state) -> str:
    """The documented fingerprint, re-derived: tensors sorted by name; name, dtype, shape, bytes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].contiguous()
        digest.update(name.encode())
        digest.update(str(t.dtype).split(".")[-1].encode())
        digest.update(repr(tuple(t.shape)).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def test_safetensors_checkpoint_gives_same_embeddings_and_key(tmp_path, tiny_checkpoint, tiny_encoder):
    """The same tensors as .safetensors and as .pt: same weights fingerprint, same encoder key."""
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in torch.load(tiny_checkpoint).items()}, path)
    other = load_encoder(TINY_MODEL, str(path), model_config=TINY_CONFIG, device="cpu")
    assert path.read_bytes() != tiny_checkpoint.read_bytes()
    assert other.key == tiny_encoder.key
    assert other.info["weights"] == tiny_encoder.info["weights"]
    texts = ["a photo of a dog", "a cat"]
    np.testing.assert_allclose(other.encode_texts(texts), tiny_encoder.encode_texts(texts), atol=1e-6)


def test_text_embeddings_are_normalized_and_match_the_model(tiny_encoder):
    import open_clip
    import torch

    texts = ["a photo of a dog", "a cat", "x"]
    ours = tiny_encoder.encode_texts(texts, batch_size=2)
    with torch.no_grad():
        direct = tiny_encoder.model.encode_text(open_clip.get_tokenizer(TINY_MODEL)(texts))
    direct = torch.nn.functional.normalize(direct, dim=-1).numpy()
    np.testing.assert_allclose(ours, direct, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


def test_missing_checkpoint_and_unknown_tag_are_clear_errors(tiny_checkpoint):
    with pytest.raises(EncoderError, match="does not exist"):
        load_encoder(TINY_MODEL, "/nonexistent/weights.pt", model_config=TINY_CONFIG)
    with pytest.raises(EncoderError, match="neither a checkpoint file nor a pretrained tag"):
        load_encoder("ViT-B-32", "no-such-tag")
    with pytest.raises(EncoderError, match="unknown model"):
        load_encoder("NoSuchNet-1", "random")


def test_encoder_key_names_tag_or_file_hash():
    assert encoder_key("ViT-B-32", "openai") == "ViT-B-32/openai"
    assert encoder_key("ViT-B-32", "/w.pt", "ab" * 32) == "ViT-B-32/sha256-abababababab"

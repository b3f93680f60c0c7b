"""Encoder loading through the real open_clip path: config file + local checkpoint."""
from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest

from featurestore.encoders import encoder_key, load_encoder
from featurestore.errors import EncoderError
from tests.conftest import TINY_CONFIG, TINY_MODEL
from tests.images import random_image


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


# ---------------------------------------------------------------------------- checkpoints by order
def test_checkpoint_with_other_names_loads_by_order(tmp_path, tiny_checkpoint, tiny_encoder):
    """Keys renamed (another implementation's names), same shapes in the same order: loaded by
    order, so the model holds exactly the file's tensors."""
    import torch

    state = torch.load(tiny_checkpoint)
    renamed = {f"other_impl.{i:04d}": v for i, v in enumerate(state.values())}
    path = tmp_path / "renamed.pt"
    torch.save(renamed, path)
    other = load_encoder(TINY_MODEL, str(path), model_config=TINY_CONFIG, device="cpu")
    loaded = other.model.state_dict()
    for (name, value) in state.items():
        assert torch.equal(loaded[name], value), name
    texts = ["a dog"]
    np.testing.assert_allclose(other.encode_texts(texts), tiny_encoder.encode_texts(texts), atol=1e-6)


def test_checkpoint_that_does_not_fit_by_order_is_refused(tmp_path, tiny_checkpoint):
    import torch

    values = list(torch.load(tiny_checkpoint).values())
    swapped = {f"t{i}": v for i, v in enumerate(values[:1] + values[2:3] + values[1:2] + values[3:])}
    torch.save(swapped, tmp_path / "swapped.pt")
    if tuple(values[1].shape) != tuple(values[2].shape):
        with pytest.raises(EncoderError, match="by order tensor 1 .* does not match"):
            load_encoder(TINY_MODEL, str(tmp_path / "swapped.pt"), model_config=TINY_CONFIG, device="cpu")
    torch.save({f"t{i}": v for i, v in enumerate(values[:-1])}, tmp_path / "short.pt")
    with pytest.raises(EncoderError, match=f"holds {len(values) - 1} tensors, not {len(values)}"):
        load_encoder(TINY_MODEL, str(tmp_path / "short.pt"), model_config=TINY_CONFIG, device="cpu")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(EncoderError, match="cannot read checkpoint"):
        load_encoder(TINY_MODEL, str(tmp_path / "garbage.pt"), model_config=TINY_CONFIG, device="cpu")


# ---------------------------------------------------------------------------- configs and preprocessing
def test_preprocess_cfg_in_a_model_config_sets_the_default_preprocessing(tmp_path, tiny_checkpoint):
    """open_clip's preprocess_cfg key no longer crashes: it is the model's default preprocessing,
    the recorded architecture excludes it, and options still override it."""
    config = json.loads(TINY_CONFIG.read_text())
    config["preprocess_cfg"] = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear",
                                "resize": 40}
    path = tmp_path / "tiny-pp.json"
    path.write_text(json.dumps(config))
    enc = load_encoder("tiny-pp", str(tiny_checkpoint), model_config=path, device="cpu")
    assert enc.info["preprocess"] == {"size": [32, 32], "resize": 40, "resize_mode": "shortest",
                                      "interpolation": "bilinear", "mean": [0.5, 0.5, 0.5],
                                      "std": [0.25, 0.25, 0.25], "fill_color": 0}
    assert "preprocess_cfg" not in enc.info["model_cfg"]
    assert enc.model.visual.preprocess_cfg["mean"] == (0.5, 0.5, 0.5)  # given to open_clip as kwargs
    over = load_encoder("tiny-pp", str(tiny_checkpoint), model_config=path, device="cpu",
                        preprocess={"std": (0.5, 0.5, 0.5), "crop": 30, "resize": 30})
    assert over.info["preprocess"]["std"] == [0.5, 0.5, 0.5] and over.info["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert over.info["preprocess"]["size"] == [30, 30] and over.info["preprocess"]["resize"] == 30


def test_model_config_name_must_be_safe(tmp_path):
    from featurestore.encoders import register_model_config

    with pytest.raises(EncoderError, match="not a valid config name"):
        register_model_config(json.loads(TINY_CONFIG.read_text()), name="../../etc/x")


def test_pretrained_is_required_unless_random():
    with pytest.raises(EncoderError, match="give --pretrained .* or 'random'"):
        load_encoder(TINY_MODEL, None, model_config=TINY_CONFIG, device="cpu")
    enc = load_encoder(TINY_MODEL, "random", model_config=TINY_CONFIG, device="cpu")
    assert enc.key == f"{TINY_MODEL}/random" and enc.info["weights"] == "random"


# ---------------------------------------------------------------------------- hub models offline
def test_hub_tag_offline_fails_at_once_with_one_line_and_a_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(EncoderError) as caught:
        load_encoder("ViT-B-32", "openai", device="cpu")
    message = str(caught.value)
    assert "HF_HUB_OFFLINE is set" in message and "--pretrained /path/to/checkpoint" in message
    assert "\n" not in message
    assert time.perf_counter() - start < 50  # no minute of retries (the model itself builds in seconds)


def test_unreachable_hub_is_checked_once_and_goes_offline(monkeypatch):
    from featurestore.encoders import hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: connection refused
    monkeypatch.setattr(hub, "_REACHABLE", {})
    with pytest.raises(EncoderError, match="127.0.0.1 cannot be reached and they are not in the local cache"):
        load_encoder("hf-hub:org/some-model", None, device="cpu")
    assert hub._REACHABLE == {"127.0.0.1": False}


def test_open_clip_schemas_are_accepted_and_carry_their_weights(tmp_path, tiny_checkpoint, tiny_encoder):
    """local-dir: loads the folder's config and weights (fingerprinted like any checkpoint);
    hf-hub:/local-dir: take no --pretrained."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "tiny-folder"
    folder.mkdir()
    config = {"model_cfg": json.loads(TINY_CONFIG.read_text()), "preprocess_cfg": {"mean": [0.5, 0.5, 0.5]}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    tensors = {k: v.contiguous() for k, v in torch.load(tiny_checkpoint).items()}
    save_file(tensors, folder / "open_clip_model.safetensors")
    enc = load_encoder(f"local-dir:{folder}", None, device="cpu")
    assert enc.key == f"tiny-folder/sha256-{tiny_encoder.info['weights'].split(':')[1][:12]}"
    assert enc.info["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    np.testing.assert_allclose(enc.encode_texts(["a cat"]), tiny_encoder.encode_texts(["a cat"]), atol=1e-6)
    with pytest.raises(EncoderError, match="carries its own weights"):
        load_encoder(f"local-dir:{folder}", str(tiny_checkpoint), device="cpu")


# ---------------------------------------------------------------------------- timm image encoders
def test_timm_encoder_is_image_only_with_timm_preprocessing(tmp_path):
    """timm:ARCH: features equal timm's own forward (classifier removed) on timm's transform."""
    import timm
    import torch
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(1)
    reference = timm.create_model("test_efficientnet")
    torch.save(reference.state_dict(), tmp_path / "test_eff.pth")
    enc = load_encoder("timm:test_efficientnet", str(tmp_path / "test_eff.pth"), device="cpu")
    assert enc.info["modalities"] == ["image"] and enc.tokenizer is None and enc.info["family"] == "timm"
    reference.reset_classifier(0)
    reference.eval()
    image = random_image((70, 50), seed=5)
    ours = enc.encode_images(enc.preprocess(image)[None])
    with torch.no_grad():
        want = reference(create_transform(**resolve_data_config({}, model=reference))(image)[None])
    want = torch.nn.functional.normalize(want, dim=-1).numpy()
    np.testing.assert_allclose(ours, want, atol=1e-5)
    assert enc.embed_dim == want.shape[1]
    with pytest.raises(EncoderError, match="image-only"):
        enc.encode_texts(["a dog"])
    headless = {k: v for k, v in torch.load(tmp_path / "test_eff.pth").items() if not k.startswith("classifier")}
    torch.save(headless, tmp_path / "headless.pth")
    again = load_encoder("timm:test_efficientnet", str(tmp_path / "headless.pth"), device="cpu")
    assert again.key != enc.key  # other tensors (no classifier), another fingerprint
    np.testing.assert_allclose(again.encode_images(again.preprocess(image)[None]), ours, atol=1e-6)
    with pytest.raises(EncoderError, match="unknown timm architecture"):
        load_encoder("timm:no_such_net", "random", device="cpu")
    with pytest.raises(EncoderError, match="a checkpoint file .* or 'random'"):
        load_encoder("timm:test_efficientnet", None, device="cpu")


def test_rebuilt_from_a_store_record_with_its_preprocessing_and_weights(tmp_path, tiny_checkpoint):
    """load_encoder_from_info (fs text/search) rebuilds the recorded architecture and
    preprocessing object, and checks the weights' tensor fingerprint."""
    import torch

    from featurestore.encoders import load_encoder_from_info

    made = load_encoder(TINY_MODEL, str(tiny_checkpoint), model_config=TINY_CONFIG, device="cpu",
                        preprocess={"resize": 40, "crop": 32, "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5)})
    info = json.loads(json.dumps(made.info))  # as stored
    again = load_encoder_from_info(info, device="cpu")
    assert again.key == made.key and again.info["preprocess"] == made.info["preprocess"]
    image = random_image((50, 45), seed=9)
    torch.testing.assert_close(again.preprocess(image), made.preprocess(image))
    other = {k: v + 1 for k, v in torch.load(tiny_checkpoint).items()}
    torch.save(other, tmp_path / "other.pt")
    with pytest.raises(EncoderError, match="but the store's features were made with"):
        load_encoder_from_info(info, pretrained=str(tmp_path / "other.pt"), device="cpu")

"""Building an encoder from a model name, and rebuilding the one recorded in a store.

Model names: an open_clip architecture (``ViT-B-32``, or a JSON config's name with
``model_config``), ``hf-hub:org/repo`` or ``local-dir:/path`` (open_clip's hub and folder
models, which carry their weights), or ``timm:ARCH`` (an image-only timm encoder).
``pretrained``: an open_clip tag, a checkpoint file, or ``"random"``; it is required (random
weights are never a silent default).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from featurestore.encoders.checkpoints import looks_like_checkpoint
from featurestore.encoders.encoder import Encoder, default_device
from featurestore.encoders.openclip_models import SCHEMAS, load_open_clip, read_model_config
from featurestore.encoders.timm_models import is_timm_name, load_timm
from featurestore.errors import EncoderError

PREPROCESS_OPTIONS = ("mean", "std", "resize", "crop", "interpolation", "resize_mode")


def check_model_spec(model: str, pretrained: str | None = None,
                     model_config: str | os.PathLike | None = None) -> None:
    """Refuse, with EncoderError, a model spec that cannot load, as far as that shows without
    importing torch, open_clip or timm: an empty name; ``--pretrained`` given to a model that
    carries its weights (``hf-hub:``, ``local-dir:``) or missing for one that does not; a
    ``local-dir:`` folder without ``open_clip_config.json`` or weights; a checkpoint file that is
    not there; ``--model-config`` with a timm model, or one that is not a model config. Callers
    run it before scanning sources or loading anything heavy; :func:`load_encoder` runs it too.
    Whether an architecture or a pretrained tag exists is checked when the model loads."""
    if not model or not model.strip():
        raise EncoderError("give a model name with --model (see fs models)")
    schema = next((s for s in SCHEMAS if model.startswith(s)), None)
    if is_timm_name(model):
        if model_config is not None:
            raise EncoderError("a timm:ARCH model takes no --model-config (timm knows its architectures)")
        if not model[len("timm:"):]:
            raise EncoderError("give a timm architecture after timm: (see fs models --library timm)")
    elif model_config is not None:
        read_model_config(model_config)
    if schema is not None:
        rest = model[len(schema):]
        if not rest:
            raise EncoderError(f"give a {'repository' if schema == 'hf-hub:' else 'folder'} after {schema}")
        if pretrained not in (None, ""):
            raise EncoderError(f"{model} carries its own weights; drop --pretrained")
        if schema == "local-dir:":
            folder = Path(rest).expanduser()
            if not (folder / "open_clip_config.json").is_file():
                raise EncoderError(f"{folder} is not an open_clip model folder (no open_clip_config.json)")
            if not any((folder / n).is_file() for n in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")):
                raise EncoderError(f"{folder} holds no open_clip_model.safetensors or open_clip_pytorch_model.bin")
        return
    if pretrained is None or pretrained == "":
        what = "a checkpoint file (.pth/.pt/.bin/.safetensors)" if is_timm_name(model) else \
            "a pretrained tag (see fs models), a checkpoint file,"
        raise EncoderError(f"give --pretrained for {model}: {what} or 'random' for untrained weights")
    if pretrained != "random" and looks_like_checkpoint(pretrained) and not Path(pretrained).is_file():
        raise EncoderError(f"checkpoint {pretrained} does not exist" if not Path(pretrained).exists()
                           else f"checkpoint {pretrained} is not a file")


def load_encoder(model: str, pretrained: str | None = None, *, device: str | None = None,
                 precision: str | None = None, model_config: str | os.PathLike | None = None,
                 model_cfg: dict[str, Any] | None = None, preprocess: dict[str, Any] | None = None,
                 recorded_preprocess: dict[str, Any] | None = None) -> Encoder:
    """Build a frozen encoder (``eval()``, no grad) on CUDA when present, else CPU.

    ``precision`` defaults to fp16 on CUDA and fp32 on CPU. ``preprocess`` overrides the
    model's default preprocessing: keys ``mean``, ``std`` (3 floats), ``resize``, ``crop``
    (pixels), ``interpolation``, ``resize_mode``; None values are ignored.
    """
    check_model_spec(model, pretrained, model_config)
    device = device or default_device()
    unknown = set(preprocess or {}) - set(PREPROCESS_OPTIONS)
    if unknown:
        raise EncoderError(f"unknown preprocessing options {sorted(unknown)}; known: {', '.join(PREPROCESS_OPTIONS)}")
    if is_timm_name(model):
        if model_config is not None or model_cfg:
            raise EncoderError("a timm:ARCH model takes no --model-config (timm knows its architectures)")
        return load_timm(model, pretrained, device=device, precision=precision, preprocess=preprocess,
                         recorded_preprocess=recorded_preprocess)
    return load_open_clip(model, pretrained, device=device, precision=precision, model_config=model_config,
                          model_cfg=model_cfg or None, preprocess=preprocess,
                          recorded_preprocess=recorded_preprocess)


def load_encoder_from_info(info: dict[str, Any], *, pretrained: str | None = None,
                           device: str | None = None, precision: str | None = None) -> Encoder:
    """Rebuild the encoder that made a store's features, from its recorded provenance
    (architecture config and preprocessing included).

    ``pretrained`` overrides the recorded checkpoint path (e.g. the file moved); its tensor
    fingerprint must then match the recorded one.
    """
    recorded = info.get("pretrained") or None
    model = info["model"]
    if model.startswith(("hf-hub:", "local-dir:")):
        weights = None
    else:
        weights = pretrained or recorded or ("random" if info.get("weights") == "random" else None)
    preprocess = info.get("preprocess")
    if not (isinstance(preprocess, dict) and "resize" in preprocess):
        preprocess = None  # a store written before preprocessing was recorded as one object
    encoder = load_encoder(model, weights, device=device, precision=precision,
                           model_cfg=None if info.get("family") == "timm" else info.get("model_cfg"),
                           recorded_preprocess=preprocess)
    if encoder.info["weights"] != info["weights"]:
        raise EncoderError(
            f"weights {weights} are {encoder.info['weights']}, "
            f"but the store's features were made with {info['weights']}"
        )
    return encoder

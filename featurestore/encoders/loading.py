"""Building an encoder from a model name, and rebuilding the one recorded in a store.

Model names: an open_clip architecture (``ViT-B-32``, or a JSON config's name with
``model_config``), ``hf-hub:org/repo`` or ``local-dir:/path`` (open_clip's hub and folder
models, which carry their weights), or ``timm:ARCH`` (an image-only timm encoder).
``pretrained``: an open_clip tag, a checkpoint file, or ``"random"``; it is required (random
weights are never a silent default).
"""
from __future__ import annotations

import os
from typing import Any

from featurestore.encoders.encoder import Encoder, default_device
from featurestore.encoders.openclip_models import load_open_clip
from featurestore.encoders.timm_models import is_timm_name, load_timm
from featurestore.errors import EncoderError

PREPROCESS_OPTIONS = ("mean", "std", "resize", "crop", "interpolation", "resize_mode")


def load_encoder(model: str, pretrained: str | None = None, *, device: str | None = None,
                 precision: str | None = None, model_config: str | os.PathLike | None = None,
                 model_cfg: dict[str, Any] | None = None, preprocess: dict[str, Any] | None = None,
                 recorded_preprocess: dict[str, Any] | None = None) -> Encoder:
    """Build a frozen encoder (``eval()``, no grad) on CUDA when present, else CPU.

    ``precision`` defaults to fp16 on CUDA and fp32 on CPU. ``preprocess`` overrides the
    model's default preprocessing: keys ``mean``, ``std`` (3 floats), ``resize``, ``crop``
    (pixels), ``interpolation``, ``resize_mode``; None values are ignored.
    """
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

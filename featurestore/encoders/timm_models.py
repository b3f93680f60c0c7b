"""timm image encoders (``--model timm:ARCH``): ImageNet classifiers, DINO/DINOv2, MoCo ...

The model is built by ``timm.create_model(ARCH)``, the checkpoint loaded into it (by name, or
by order when the names differ, see checkpoints.py; a file without the classifier loads into
the headless model), and the classifier removed (``reset_classifier(0)``): the stored feature
is the pooled pre-logits embedding. Preprocessing defaults to timm's data config for the
architecture (``resolve_data_config``), which options override; the transform is timm's
``create_transform``. An ARCH may carry timm's pretrained tag (``vit_small_patch14_dinov2.lvd142m``)
to select that tag's data config.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from featurestore.encoders.checkpoints import load_state, looks_like_checkpoint, read_state_dict, tensors_sha256
from featurestore.encoders.encoder import (
    Encoder,
    freeze,
    json_clean,
    library_logging_silenced,
    resolve_precision,
    torch_dtype,
    versions,
)
from featurestore.encoders.preprocessing import Preprocessing
from featurestore.errors import EncoderError

PREFIX = "timm:"


def is_timm_name(model: str) -> bool:
    return model.startswith(PREFIX)


def load_timm(model: str, pretrained: str | None, *, device: str, precision: str | None = None,
              preprocess: dict[str, Any] | None = None,
              recorded_preprocess: dict[str, Any] | None = None) -> Encoder:
    """Build a frozen timm image encoder from ``timm:ARCH`` and a checkpoint file (or 'random')."""
    import timm
    import torch

    precision = resolve_precision(device, precision)
    arch = model[len(PREFIX):]
    base, _tag = timm.models.split_model_name_tag(arch)
    if not arch or not timm.is_model(base):
        raise EncoderError(f"unknown timm architecture {arch!r} (see fs models --library timm)")
    if pretrained in (None, ""):
        raise EncoderError(f"give --pretrained for {model}: a checkpoint file (.pth/.pt/.bin/.safetensors) "
                           "or 'random' for untrained weights")
    file_state = None
    weights_sha256 = None
    if pretrained != "random":
        if not looks_like_checkpoint(pretrained):
            raise EncoderError(f"--pretrained for a timm model is a checkpoint file or 'random', not {pretrained!r}")
        file_state = read_state_dict(pretrained)
        weights_sha256 = tensors_sha256(file_state)
        pretrained = str(Path(pretrained).resolve())

    try:
        with library_logging_silenced():
            net: Any = timm.create_model(arch, pretrained=False)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise EncoderError(f"cannot build timm model {arch}: {str(exc).splitlines()[0][:200]}") from None
    if file_state is not None:
        _load_into(net, file_state, pretrained, model)
    net.reset_classifier(0)
    dtype = torch_dtype(precision)
    net = freeze(net.to(device=device, dtype=dtype))

    if recorded_preprocess is not None:
        wanted = Preprocessing.from_dict(recorded_preprocess)
    else:
        from timm.data import resolve_data_config

        wanted = Preprocessing.from_timm(resolve_data_config({}, model=net))
        wanted = wanted.override(**{k: v for k, v in (preprocess or {}).items() if v is not None})
    try:
        with torch.inference_mode():
            probe = net(torch.zeros(1, 3, *wanted.size, device=device, dtype=dtype))
    except (RuntimeError, AssertionError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EncoderError(f"timm model {arch} cannot take {wanted.size[0]}x{wanted.size[1]} inputs "
                           f"(--crop): {first[:200]}") from None
    if probe.ndim != 2:
        raise EncoderError(f"timm model {arch} gives features of shape {tuple(probe.shape)} after removing "
                           "its classifier, not (N, D)")
    info: dict[str, Any] = {
        "family": "timm",
        "model": model,
        "pretrained": pretrained,
        "weights": f"sha256:{weights_sha256}" if weights_sha256 else "random",
        "embed_dim": int(probe.shape[1]),
        "preprocess": wanted.to_dict(),
        "precision": precision,
        "normalized": True,
        "modalities": ["image"],
        "model_cfg": json_clean({"architecture": arch, "num_classes": 0}),
        "versions": versions("timm"),
    }
    key = f"{model}/sha256-{weights_sha256[:12]}" if weights_sha256 else f"{model}/random"
    return Encoder(key=key, info=info, model=net, preprocess=wanted.transform(), tokenizer=None,
                   device=torch.device(device), dtype=dtype, image_forward=net, text_forward=None)


def _load_into(net: Any, file_state: Any, path: str, model: str) -> None:
    """With its classifier when the file has one, else into the headless model; by name or by order."""
    with_head = len(file_state) == len(net.state_dict())
    if not with_head:
        net.reset_classifier(0)
    load_state(net, file_state, path, model)


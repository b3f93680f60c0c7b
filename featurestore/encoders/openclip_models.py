"""open_clip models (image and text towers): architectures open_clip ships, JSON configs of
one's own, ``hf-hub:org/repo`` and ``local-dir:/path`` models, with a pretrained tag, a local
checkpoint or explicitly random weights.

A JSON config may carry open_clip's ``preprocess_cfg`` key (mean, std, size, interpolation,
resize_mode, fill_color; featurestore adds ``resize`` and ``crop``): it sets the model's default
preprocessing, which command-line options override in turn. The config recorded in the store
is the architecture alone; the preprocessing is recorded as its own object.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from featurestore.encoders import short_context
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
from featurestore.encoders.hub import hub_download
from featurestore.encoders.preprocessing import Preprocessing
from featurestore.errors import EncoderError

SCHEMAS = ("hf-hub:", "local-dir:")
_CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_OFFLINE_HINT = "pass a local checkpoint instead: --pretrained /path/to/checkpoint.pt"


def split_model_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(architecture config, preprocess_cfg) of a JSON model config."""
    config = dict(config)
    preprocess = config.pop("preprocess_cfg", None) or {}
    if not isinstance(preprocess, dict):
        raise EncoderError(f"preprocess_cfg must be a JSON object, not {type(preprocess).__name__}")
    return config, preprocess


def read_model_config(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"model config {path} does not exist")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EncoderError(f"model config {path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or not all(k in config for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise EncoderError(f"model config {path} is not an open_clip model config "
                           "(a JSON object with embed_dim, vision_cfg and text_cfg)")
    return config


def register_model_config(config: str | os.PathLike | dict[str, Any], name: str | None = None) -> str:
    """Make an architecture config known to open_clip under ``name`` (default: the file's stem);
    returns the name. ``preprocess_cfg`` is removed first (open_clip's model constructor does not
    take it). The name is checked, and no file is left behind."""
    import open_clip

    if not isinstance(config, dict):
        name = name or Path(config).stem
        config = read_model_config(config)
    if not name or not _CONFIG_NAME.match(name):
        raise EncoderError(f"model name {name!r} is not a valid config name (letters, digits, . _ + -)")
    architecture, _ = split_model_config(config)
    folder = Path(tempfile.mkdtemp(prefix="featurestore-cfg-"))
    try:
        (folder / f"{name}.json").write_text(json.dumps(architecture))
        open_clip.add_model_config(folder / f"{name}.json")  # read into open_clip's registry now
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return name


def encoder_key(model: str, pretrained: str | None, weights_sha256: str | None = None) -> str:
    """``ViT-B-32/openai`` for a hub tag, ``ViT-B-32/sha256-<12 hex>`` for a checkpoint file
    (the hex names its tensors), ``ViT-B-32/random``; an ``hf-hub:`` model is its own key."""
    if weights_sha256:
        return f"{model}/sha256-{weights_sha256[:12]}"
    return f"{model}/{pretrained or 'random'}"


def load_open_clip(model: str, pretrained: str | None, *, device: str, precision: str | None = None,
                   model_config: str | os.PathLike | None = None, model_cfg: dict[str, Any] | None = None,
                   preprocess: dict[str, Any] | None = None,
                   recorded_preprocess: dict[str, Any] | None = None) -> Encoder:
    """Build a frozen open_clip model. ``preprocess`` holds overrides (mean, std, resize, crop,
    interpolation, resize_mode); ``recorded_preprocess`` is a store's recorded object, used as is."""
    import open_clip
    import torch

    precision = resolve_precision(device, precision)
    schema = next((s for s in SCHEMAS if model.startswith(s)), None)
    config_preprocess: dict[str, Any] = {}
    if model_config is not None:
        config = read_model_config(model_config)
        registered = register_model_config(config, name=Path(model_config).stem)
        if registered != model:
            raise EncoderError(f"model config {model_config} defines model {registered!r}, not {model!r}")
        _, config_preprocess = split_model_config(config)
    elif model_cfg is not None and schema is None:
        register_model_config(model_cfg, name=model)
    if schema is None and model not in open_clip.list_models():
        raise EncoderError(f"unknown model {model!r}: not an open_clip architecture (see fs models; give "
                           "--model-config for your own, hf-hub:org/repo or local-dir:/path for open_clip's "
                           "hub and folder models, timm:ARCH for a timm image encoder)")

    weights_sha256 = None
    file_state = None
    create_pretrained: str | None = None
    if schema is not None:
        if pretrained not in (None, ""):
            raise EncoderError(f"{model} carries its own weights; drop --pretrained")
        if schema == "local-dir:":
            folder = Path(model[len(schema):]).expanduser()
            if not (folder / "open_clip_config.json").is_file():
                raise EncoderError(f"{folder} is not an open_clip model folder (no open_clip_config.json)")
            model = f"local-dir:{folder.resolve()}"
            weights_file = next((folder / n for n in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
                                 if (folder / n).is_file()), None)
            if weights_file is None:
                raise EncoderError(f"{folder} holds no open_clip_model.safetensors or open_clip_pytorch_model.bin")
            weights_sha256 = tensors_sha256(read_state_dict(weights_file))
    elif pretrained is None or pretrained == "":
        raise EncoderError(f"give --pretrained for {model}: a pretrained tag (see fs models), a checkpoint file, "
                           "or 'random' for untrained weights")
    elif pretrained == "random":
        pass
    elif looks_like_checkpoint(pretrained):
        file_state = read_state_dict(pretrained)
        weights_sha256 = tensors_sha256(file_state)
        pretrained = str(Path(pretrained).resolve())
    elif pretrained not in open_clip.list_pretrained_tags_by_model(model):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none"
        raise EncoderError(f"{pretrained!r} is neither a checkpoint file nor a pretrained tag of {model} "
                           f"(tags: {tags}; or 'random')")
    else:
        create_pretrained = pretrained

    overrides = dict(preprocess or {})
    if recorded_preprocess is not None:
        wanted = Preprocessing.from_dict(recorded_preprocess)
        kwargs = wanted.open_clip_kwargs()
    else:
        wanted = None
        kwargs = _open_clip_preprocess_kwargs({**config_preprocess, **{k: v for k, v in overrides.items()
                                                                       if v is not None}})
    what = f"weights {create_pretrained!r} of {model}" if create_pretrained else f"{model}"
    try:
        with library_logging_silenced():
            if schema or create_pretrained:
                hint = _OFFLINE_HINT if not schema else ("copy the repository to this machine and use "
                                                         "--model local-dir:/path/to/it")
                with hub_download(what, hint):
                    net, _, _ = open_clip.create_model_and_transforms(
                        model, pretrained=create_pretrained, device=device, precision=precision, **kwargs)
                    tokenizer = open_clip.get_tokenizer(model)
            else:
                net, _, _ = open_clip.create_model_and_transforms(model, pretrained=None, device=device,
                                                                  precision=precision, **kwargs)
                tokenizer = open_clip.get_tokenizer(model)
    except (RuntimeError, ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EncoderError(f"cannot build {model} with weights {pretrained}: {first[:300]}") from None
    if file_state is not None:
        assert pretrained is not None  # file_state was read from it
        _load_checkpoint(net, file_state, pretrained, model)  # after casting, as open_clip loads files
    freeze(net)

    if wanted is None:
        wanted = Preprocessing.from_open_clip(getattr(net.visual, "preprocess_cfg", {}) or {})
        wanted = wanted.override_from_config({k: v for k, v in config_preprocess.items()
                                              if k in ("resize", "crop")})
        wanted = wanted.override(resize=overrides.get("resize"), crop=overrides.get("crop"),
                                 interpolation=overrides.get("interpolation"))
    if schema == "hf-hub:":
        cfg = None
        weights = model
    else:
        cfg = open_clip.get_model_config(model) if schema is None else _local_dir_config(model)
        weights = f"sha256:{weights_sha256}" if weights_sha256 else (pretrained or "random")
    info: dict[str, Any] = {
        "family": "open_clip",
        "model": model,
        "pretrained": pretrained or "",
        "weights": weights,
        "embed_dim": int(_embed_dim(net, cfg)),
        "preprocess": wanted.to_dict(),
        "precision": precision,
        "normalized": True,
        "modalities": ["image", "text"],
        "model_cfg": json_clean(cfg) if cfg is not None else {},
        "versions": versions("open_clip"),
    }
    if schema == "hf-hub:":
        key = model
    elif schema == "local-dir:":
        key = encoder_key(Path(model[len(schema):]).name, None, weights_sha256)
    else:
        key = encoder_key(model, pretrained, weights_sha256)
    return Encoder(key=key, info=info, model=net, preprocess=wanted.transform(), tokenizer=tokenizer,
                   device=torch.device(device), dtype=torch_dtype(precision),
                   image_forward=net.encode_image, text_forward=short_context.text_forward(net))


def _open_clip_preprocess_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """The create_model_and_transforms kwargs for the preprocessing fields open_clip understands."""
    from featurestore.encoders.preprocessing import INTERPOLATIONS, RESIZE_MODES, _triple

    unknown = set(cfg) - {"size", "mean", "std", "interpolation", "resize_mode", "fill_color", "mode",
                          "resize", "crop"}
    if unknown:
        raise EncoderError(f"preprocess_cfg has unknown keys {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    if cfg.get("mean") is not None:
        kwargs["image_mean"] = _triple(cfg["mean"])
    if cfg.get("std") is not None:
        kwargs["image_std"] = _triple(cfg["std"])
    if cfg.get("interpolation") is not None:
        if cfg["interpolation"] not in INTERPOLATIONS:
            raise EncoderError(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {cfg['interpolation']!r}")
        if cfg["interpolation"] in ("bicubic", "bilinear"):
            kwargs["image_interpolation"] = cfg["interpolation"]
    if cfg.get("resize_mode") is not None:
        if cfg["resize_mode"] not in RESIZE_MODES:
            raise EncoderError(f"resize mode must be one of {', '.join(RESIZE_MODES)}, not {cfg['resize_mode']!r}")
        kwargs["image_resize_mode"] = cfg["resize_mode"]
    return kwargs


def _load_checkpoint(net: Any, file_state: Any, path: str, model: str) -> None:
    """By name (open_clip's own loader, with its format conversions), else by order."""
    import open_clip

    if Path(path).suffix in (".npz", ".npy"):
        try:
            open_clip.load_checkpoint(net, path)
        except Exception as exc:
            raise EncoderError(f"cannot load {path} into {model}: {str(exc).splitlines()[0][:200]}") from None
        return
    if set(file_state) != set(net.state_dict()):
        try:
            with library_logging_silenced():
                open_clip.load_checkpoint(net, path, strict=True)
            return
        except (RuntimeError, KeyError, ValueError):
            pass  # names still differ after open_clip's conversions: try by order
    load_state(net, file_state, path, model)


def _embed_dim(net: Any, cfg: dict[str, Any] | None) -> int:
    if cfg and "embed_dim" in cfg:
        return int(cfg["embed_dim"])
    return int(getattr(net, "embed_dim", None) or net.text_projection.shape[-1])


def _local_dir_config(model: str) -> dict[str, Any]:
    folder = Path(model[len("local-dir:"):])
    config = json.loads((folder / "open_clip_config.json").read_text())
    return split_model_config(config.get("model_cfg", config))[0]

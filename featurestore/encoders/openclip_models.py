"""Frozen open_clip image and text towers, and the provenance that names their features.

``pretrained`` is an open_clip tag (fetched from the hub where the machine can reach it) or a
local checkpoint file (``.pt``, ``.bin``, ``.safetensors``). A model name may come from a JSON
architecture config of one's own (``model_config=path``); that config is recorded in the
provenance so the same encoder can be rebuilt later from the store alone.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.errors import EncoderError

PRECISIONS = ("fp32", "fp16", "bf16")


def file_sha256(path: str | os.PathLike, block: int = 1 << 22) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def encoder_key(model: str, pretrained: str | None, weights_sha256: str | None = None) -> str:
    """``ViT-B-32/openai`` for a hub tag, ``ViT-B-32/sha256-<12 hex>`` for a local file."""
    if weights_sha256:
        return f"{model}/sha256-{weights_sha256[:12]}"
    return f"{model}/{pretrained or 'random'}"


def register_model_config(config: str | os.PathLike | dict[str, Any], name: str | None = None) -> str:
    """Make a JSON architecture config known to open_clip; returns the model name to use."""
    import open_clip

    if isinstance(config, dict):
        if not name:
            raise EncoderError("a model config given as a dict needs a name")
        folder = Path(tempfile.mkdtemp(prefix="featurestore-cfg-"))
        path = folder / f"{name}.json"
        path.write_text(json.dumps(config))
    else:
        path = Path(config)
        if not path.is_file():
            raise EncoderError(f"model config {path} does not exist")
        try:
            json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise EncoderError(f"model config {path} is not valid JSON ({exc})") from None
    open_clip.add_model_config(path)
    return name or path.stem


@dataclass
class Encoder:
    """A frozen CLIP-style model with its preprocessing, tokenizer and provenance."""

    key: str
    info: dict[str, Any]
    model: Any
    preprocess: Any
    tokenizer: Any
    device: Any
    dtype: Any
    _grad_ctx: Any = field(default=None, repr=False)

    @property
    def embed_dim(self) -> int:
        return int(self.info["embed_dim"])

    def encode_images(self, images: Any, normalize: bool = True) -> np.ndarray:
        """Embed a preprocessed (B, 3, H, W) batch; float32 NumPy rows, L2-normalized by default."""
        import torch

        with torch.inference_mode():
            batch = images.to(self.device, dtype=self.dtype, non_blocking=True)
            out = self.model.encode_image(batch, normalize=normalize)
        return out.float().cpu().numpy()

    def encode_texts(self, texts: list[str], batch_size: int = 256, normalize: bool = True,
                     quiet: bool = True) -> np.ndarray:
        """Embed strings; float32 (K, D), L2-normalized by default. ``quiet=False`` shows a
        progress bar (a class bank of 1000 classes x 80 templates is 80k prompts)."""
        import torch
        from tqdm.auto import tqdm

        rows = []
        with torch.inference_mode(), tqdm(total=len(texts), unit="text", desc="encode texts", disable=quiet,
                                          dynamic_ncols=True) as bar:
            for start in range(0, len(texts), batch_size):
                tokens = self.tokenizer(texts[start:start + batch_size]).to(self.device)
                rows.append(self.model.encode_text(tokens, normalize=normalize).float().cpu().numpy())
                bar.update(len(rows[-1]))
        if not rows:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.concatenate(rows)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder(model: str, pretrained: str | None = None, *, device: str | None = None,
                 precision: str | None = None, model_config: str | os.PathLike | None = None,
                 model_cfg: dict[str, Any] | None = None) -> Encoder:
    """Build a frozen open_clip model (``eval()``, no grad) on CUDA when present, else CPU.

    ``precision`` defaults to fp16 on CUDA and fp32 on CPU. ``pretrained`` None gives random
    weights (only sensible for tests and benchmarks).
    """
    import open_clip
    import torch

    device = device or default_device()
    precision = precision or ("fp16" if str(device).startswith("cuda") else "fp32")
    if precision not in PRECISIONS:
        raise EncoderError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if model_config is not None:
        registered = register_model_config(model_config)
        if registered != model:
            raise EncoderError(f"model config {model_config} defines model {registered!r}, not {model!r}")
    elif model_cfg is not None and model not in open_clip.list_models():
        register_model_config(model_cfg, name=model)
    if model not in open_clip.list_models():
        raise EncoderError(f"unknown model {model!r}: not an open_clip architecture (give --model-config for your own)")

    weights_sha256 = None
    if pretrained and (os.path.sep in pretrained or Path(pretrained).suffix in (".pt", ".pth", ".bin", ".safetensors", ".npz")):
        if not Path(pretrained).is_file():
            raise EncoderError(f"checkpoint {pretrained} does not exist")
        weights_sha256 = file_sha256(pretrained)
        pretrained = str(Path(pretrained).resolve())
    elif pretrained and pretrained not in open_clip.list_pretrained_tags_by_model(model):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none"
        raise EncoderError(f"{pretrained!r} is neither a checkpoint file nor a pretrained tag of {model} (tags: {tags})")

    try:
        net, _, preprocess = open_clip.create_model_and_transforms(
            model, pretrained=pretrained, device=device, precision=precision
        )
    except RuntimeError as exc:
        raise EncoderError(f"cannot load {model} with weights {pretrained}: {str(exc).splitlines()[0]}") from None
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(model)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]

    cfg = open_clip.get_model_config(model)
    pp = getattr(net.visual, "preprocess_cfg", {}) or {}
    info: dict[str, Any] = {
        "model": model,
        "pretrained": pretrained or "",
        "weights": f"sha256:{weights_sha256}" if weights_sha256 else (pretrained or "random"),
        "embed_dim": int(cfg["embed_dim"]),
        "preprocess": {k: (list(v) if isinstance(v, tuple) else v) for k, v in pp.items()},
        "precision": precision,
        "normalized": True,
        "model_cfg": cfg,
        "versions": _versions(),
    }
    key = encoder_key(model, pretrained, weights_sha256)
    return Encoder(key=key, info=info, model=net, preprocess=preprocess, tokenizer=tokenizer,
                   device=torch.device(device), dtype=dtype)


def load_encoder_from_info(info: dict[str, Any], *, pretrained: str | None = None,
                           device: str | None = None, precision: str | None = None) -> Encoder:
    """Rebuild the encoder that made a store's features, from its recorded provenance.

    ``pretrained`` overrides the recorded checkpoint path (e.g. the file moved); its SHA-256
    must then match the recorded one.
    """
    weights = pretrained or info.get("pretrained") or None
    encoder = load_encoder(info["model"], weights, device=device, precision=precision,
                           model_cfg=info.get("model_cfg"))
    if encoder.info["weights"] != info["weights"]:
        raise EncoderError(
            f"weights {weights} are {encoder.info['weights']}, but the store's features were made with {info['weights']}"
        )
    return encoder


def _versions() -> dict[str, str]:
    import open_clip
    import torch

    from featurestore import __version__

    return {"open_clip": open_clip.__version__, "torch": torch.__version__, "featurestore": __version__}

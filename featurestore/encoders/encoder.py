"""The frozen encoder the pipeline uses, whatever library built it: an image tower (always), a
text tower (open_clip models), the preprocessing transform, and the provenance that names the
features (``key`` and ``info``)."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featurestore.errors import EncoderError

PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass
class Encoder:
    """A frozen model with its preprocessing, tokenizer (None for image-only) and provenance.

    ``image_forward(batch)`` returns the raw (unnormalised) image embeddings of a preprocessed
    batch; ``text_forward(tokens)`` the raw text embeddings, or is None for an image-only
    encoder (a timm classifier or a self-supervised backbone)."""

    key: str
    info: dict[str, Any]
    model: Any
    preprocess: Any
    tokenizer: Any
    device: Any
    dtype: Any
    image_forward: Callable[[Any], Any] | None = field(default=None, repr=False)
    text_forward: Callable[[Any], Any] | None = field(default=None, repr=False)

    @property
    def embed_dim(self) -> int:
        return int(self.info["embed_dim"])

    @property
    def has_text(self) -> bool:
        return self.text_forward is not None

    def encode_images(self, images: Any, normalize: bool = True) -> np.ndarray:
        """Embed a preprocessed (B, 3, H, W) batch; float32 NumPy rows, L2-normalized by default
        (``normalize=False``: the raw embeddings, whose norms the store keeps)."""
        import torch

        forward = self.image_forward or (lambda batch: self.model.encode_image(batch))
        with torch.inference_mode():
            batch = images.to(self.device, dtype=self.dtype, non_blocking=True)
            out = forward(batch).float()
            if normalize:
                out = torch.nn.functional.normalize(out, dim=-1)
        return out.cpu().numpy()

    def encode_texts(self, texts: list[str], batch_size: int = 256, normalize: bool = True,
                     quiet: bool = True) -> np.ndarray:
        """Embed strings; float32 (K, D), L2-normalized by default. ``quiet=False`` shows a
        progress bar (a class bank of 1000 classes x 80 templates is 80k prompts)."""
        import torch
        from tqdm.auto import tqdm

        text_forward = self.text_forward
        if text_forward is None:
            raise image_only_error(self.key)
        rows = []
        with torch.inference_mode(), tqdm(total=len(texts), unit="text", desc="encode texts", disable=quiet,
                                          dynamic_ncols=True) as bar:
            for start in range(0, len(texts), batch_size):
                tokens = self.tokenizer(texts[start:start + batch_size]).to(self.device)
                out = text_forward(tokens).float()
                if normalize:
                    out = torch.nn.functional.normalize(out, dim=-1)
                rows.append(out.cpu().numpy())
                bar.update(len(rows[-1]))
        if not rows:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.concatenate(rows)


def image_only_error(key: str) -> EncoderError:
    return EncoderError(f"encoder {key!r} is image-only (no text tower): it cannot encode texts; store a "
                        "classifier head as its class bank with fs text --weights HEAD.npz --classes ... instead")


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(device: str, precision: str | None) -> str:
    """fp16 on CUDA and fp32 elsewhere unless given; refuses unknown names."""
    precision = precision or ("fp16" if str(device).startswith("cuda") else "fp32")
    if precision not in PRECISIONS:
        raise EncoderError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision


def torch_dtype(precision: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def freeze(model: Any) -> Any:
    """eval() and no gradients."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@contextlib.contextmanager
def library_logging_silenced() -> Iterator[None]:
    """open_clip and timm log warnings and errors (random init, a failed download) on the root
    logger while loading; what goes wrong reaches the user as our one-line error instead."""
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def versions(*libraries: str) -> dict[str, str]:
    """Versions of torch, featurestore and the given libraries (``open_clip``, ``timm``)."""
    import importlib

    import torch

    from featurestore import __version__

    out = {"torch": torch.__version__, "featurestore": __version__}
    for name in libraries:
        out[name] = getattr(importlib.import_module(name), "__version__", "unknown")
    return out


def json_clean(value: Any) -> Any:
    """Tuples -> lists, recursively, so recorded provenance compares equal after a JSON round trip."""
    if isinstance(value, dict):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_clean(v) for v in value]
    return value

"""JPEG decoding and preprocessing on tensors, on the encoder's device (nvjpeg on a GPU).

The CPU path (`featurestore.extract.image_dataset`) decodes with PIL in DataLoader workers and runs the
encoder's PIL transform. On a GPU that path is the bottleneck, so here the workers only read
the encoded bytes and the main process decodes a whole batch at once with
``torchvision.io.decode_jpeg(device=...)`` and resizes / crops / normalises the decoded uint8
tensors with ``torchvision.transforms.v2`` ops on the same device. The transform is built from
the encoder's recorded `Preprocessing` object, so it reproduces the PIL transform (same resize
target and rounding, same crop or pad, same mean/std); the resampling kernels differ slightly
(PIL vs. torch antialiasing), which moves embeddings by far less than fp16 rounding does.

What nvjpeg does not do the way PIL does goes through the PIL path instead, in the worker:
anything not a baseline RGB or greyscale JPEG (PNG, CMYK JPEG, ...) and JPEGs with an EXIF
orientation (nvjpeg ignores EXIF). A JPEG that nvjpeg rejects is decoded by PIL in the main
process, so a damaged file gets the same verdict (and reason) as on the CPU path. Every such
image is counted (`TensorDecoder.pil_decoded`) and reported.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from featurestore.encoders.preprocessing import Preprocessing
from featurestore.errors import EncoderError

JPEG_MAGIC = b"\xff\xd8\xff"
_EXIF_ORIENTATION = 0x0112
# nvjpeg (and torchvision's CPU decoder) handle these JPEG colour modes like PIL does
_TENSOR_MODES = frozenset({"RGB", "L"})
_INTERPOLATIONS = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "nearest": "NEAREST"}


def tensor_unsupported(preprocessing: Preprocessing) -> str | None:
    """Why ``preprocessing`` cannot run on tensors (None when it can)."""
    if preprocessing.interpolation not in _INTERPOLATIONS:
        return f"{preprocessing.interpolation} interpolation exists only for PIL images"
    height, width = preprocessing.size
    if height != width and preprocessing.resize_mode != "longest":
        return f"a non-square crop {height}x{width} with resize mode {preprocessing.resize_mode}"
    return None


def jpeg_for_tensor_path(data: bytes) -> bool:
    """True when ``data`` is a JPEG that tensor decoding reproduces exactly as PIL decodes it:
    RGB or greyscale, no EXIF rotation. Reads the header only (no pixel decoding)."""
    if not data.startswith(JPEG_MAGIC):
        return False
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG" or image.mode not in _TENSOR_MODES:
                return False
            return image.getexif().get(_EXIF_ORIENTATION, 1) == 1
    except Exception:  # an unreadable header: the PIL path gives the verdict and the reason
        return False


class TensorPreprocess:
    """uint8 (3, H, W) tensors -> float (3, h, w) model inputs, as `Preprocessing` describes.

    ``shortest``: the shortest side to ``resize`` (the long side ``int(resize * long / short)``,
    as torchvision computes it for PIL images too), then the centre crop; ``squash``: both sides
    to ``resize``, then the centre crop; ``longest``: the longest side to the target (open_clip's
    and timm's ``ResizeKeepRatio``: each side ``round(side / ratio)``), then centre crop or pad
    (with ``fill_color`` as open_clip does, with the mean colour as timm does). Images of one
    shape are resized as one batch.
    """

    def __init__(self, preprocessing: Preprocessing) -> None:
        from torchvision.transforms import InterpolationMode

        why = tensor_unsupported(preprocessing)
        if why:
            raise EncoderError(f"this encoder's preprocessing cannot run on tensors: {why}; use --decode cpu")
        self.preprocessing = preprocessing
        self.interpolation = InterpolationMode[_INTERPOLATIONS[preprocessing.interpolation]]

    def _resized_shape(self, height: int, width: int) -> list[int]:
        p = self.preprocessing
        if p.resize_mode == "squash":
            return [p.resize, p.resize]
        if p.resize_mode == "longest":
            # open_clip's longest mode targets the crop size; timm's 'border' mode the resize size
            target_h, target_w = (p.size if p.resize == max(p.size) else (p.resize, p.resize))
            ratio = max(height / target_h, width / target_w)
            return [round(height / ratio), round(width / ratio)]
        short, long = min(height, width), max(height, width)
        new_short, new_long = p.resize, int(p.resize * long / short)
        return [new_short, new_long] if height <= width else [new_long, new_short]

    def _fill(self) -> int | list[int]:
        """The padding colour: open_clip pads with ``fill_color``; timm's border mode (a resize
        larger than the crop) pads with the mean colour, ``round(255 * mean)`` per channel."""
        p = self.preprocessing
        if p.resize == max(p.size):
            return p.fill_color
        return [round(255 * v) for v in p.mean]

    def _crop_or_pad(self, images: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as F

        crop_h, crop_w = self.preprocessing.size
        height, width = images.shape[-2:]
        if crop_h > height or crop_w > width:
            pad_w, pad_h = max(crop_w - width, 0), max(crop_h - height, 0)
            images = F.pad(images, [pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2],
                           fill=self._fill())
        return F.center_crop(images, [crop_h, crop_w])

    def __call__(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decoded uint8 (3, H, W) images (any sizes, one device) -> (N, 3, h, w) float32."""
        from torchvision.transforms.v2 import functional as F

        p = self.preprocessing
        out: list[torch.Tensor | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(tuple(image.shape[-2:]), []).append(i)
        mean, std = list(p.mean), list(p.std)
        for (height, width), members in groups.items():
            batch = torch.stack([images[i] for i in members])
            batch = F.resize(batch, self._resized_shape(height, width), interpolation=self.interpolation,
                             antialias=True)
            batch = self._crop_or_pad(batch)
            batch = F.normalize(F.to_dtype(batch, torch.float32, scale=True), mean=mean, std=std)
            for j, i in enumerate(members):
                out[i] = batch[j]
        return torch.stack(out)  # type: ignore[arg-type]


class TensorDecoder:
    """A batch of payloads -> model inputs on ``device``: JPEG bytes (uint8 1-D tensors) are
    decoded there in one ``decode_jpeg`` call and preprocessed by `TensorPreprocess`; inputs the
    workers already preprocessed with PIL (float tensors) are moved there as they are.

    ``pil_preprocess`` (the encoder's PIL transform) decodes the JPEGs the device decoder
    rejects; ``pil_decoded`` counts every image that did not go through the tensor path."""

    def __init__(self, preprocessing: Preprocessing, device: Any,
                 pil_preprocess: Callable[[Image.Image], torch.Tensor]) -> None:
        self.transform = TensorPreprocess(preprocessing)
        self.device = torch.device(device)
        self.pil_preprocess = pil_preprocess
        self.pil_decoded = 0

    def _decode(self, blobs: list[torch.Tensor]) -> list[torch.Tensor | BaseException]:
        import warnings

        from torchvision.io import ImageReadMode, decode_jpeg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision 0.29 marks its decoders deprecated
            try:
                return list(decode_jpeg(blobs, mode=ImageReadMode.RGB, device=self.device))
            except RuntimeError:
                pass  # one bad file fails the whole batch: decode one by one to find it
            out: list[torch.Tensor | BaseException] = []
            for blob in blobs:
                try:
                    out.append(decode_jpeg(blob, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError as exc:
                    out.append(exc)
            return out

    def _pil(self, blob: torch.Tensor) -> tuple[torch.Tensor | None, str]:
        from featurestore.extract.image_dataset import decode_image, failure_reason

        try:
            image = decode_image(blob.numpy().tobytes())
        except Exception as exc:  # the same verdict and reason as the CPU path
            return None, failure_reason(exc)
        return self.pil_preprocess(image), ""

    def __call__(self, payloads: Sequence[torch.Tensor | None], ok: torch.Tensor,
                 errors: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """(payloads, ok, errors) of a collated batch -> ((B, 3, h, w) float32 on the device, ok, errors).

        A payload is JPEG bytes (uint8, 1-D), a preprocessed (3, h, w) float tensor, or None
        for a row that failed in the worker (a zero image, ok False)."""
        ok = ok.clone()
        errors = list(errors)
        jpeg_rows = [(i, p) for i, p in enumerate(payloads) if p is not None and p.dtype == torch.uint8]
        ready: dict[int, torch.Tensor] = {}
        decoded = self._decode([p for _, p in jpeg_rows]) if jpeg_rows else []
        good = []
        for (i, jpeg), image in zip(jpeg_rows, decoded):
            if isinstance(image, torch.Tensor):
                good.append((i, image))
                continue
            self.pil_decoded += 1
            tensor, reason = self._pil(jpeg)
            if tensor is None:
                ok[i], errors[i] = False, reason
            else:
                ready[i] = tensor.to(self.device)
        if good:
            for (i, _), tensor in zip(good, self.transform([image for _, image in good])):
                ready[i] = tensor
        for i, payload in enumerate(payloads):
            if payload is not None and payload.dtype != torch.uint8:
                self.pil_decoded += 1
                ready[i] = payload.to(self.device, non_blocking=True)
        if not ready:
            height, width = self.transform.preprocessing.size
            return torch.zeros(len(payloads), 3, height, width, device=self.device), ok, errors
        shape = next(iter(ready.values())).shape
        blank = torch.zeros(shape, device=self.device)
        return torch.stack([ready.get(i, blank) for i in range(len(payloads))]), ok, errors

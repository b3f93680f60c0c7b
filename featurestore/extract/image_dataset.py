"""A torch Dataset that decodes source records into preprocessed (and augmented) image tensors.

Bad rows are data, not crashes: an unreadable, empty or corrupt image yields ok=False, a short
reason and a zero tensor of the right shape, so one broken file never stops an extraction.
Augmented views are seeded from (seed, record id, view index) only, so they are identical
across reruns, resumed runs, worker counts and access orders.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from featurestore.extract.augment import build_augment
from featurestore.sources.record import Record, Source

_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")
_MAX_REASON = 200
PREFETCH_FACTOR = 4


class ImageItem(NamedTuple):
    """One dataset item: its position in `records`, (1+views, 3, H, W) tensor, success, reason."""

    position: int
    images: torch.Tensor
    ok: bool
    error: str


class ImageBatch(NamedTuple):
    """A collated batch: indices (B,), images (B, 1+views, 3, H, W), ok (B,), one reason per row."""

    indices: torch.Tensor
    images: torch.Tensor
    ok: torch.Tensor
    errors: list[str]


_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


class UnsupportedImageError(ValueError):
    """An image that decodes but whose pixels have no defined 8-bit RGB meaning."""


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of a decoded image, scaled the way torchvision converts dtypes.

    PIL's own ``convert("RGB")`` clips 16-bit and float pixels to 0..255 (a 16-bit photo comes
    out almost white, a 0..1 float TIFF black). Here 16-bit grey (PNG, TIFF, 16-bit PGM/PPM,
    which PIL scales to 0..65535) keeps its high byte, like ``convert_image_dtype`` (v >> 8);
    float grey in 0..1 maps to floor(v * 255.999), like ``convert_image_dtype`` too. Float
    pixels outside 0..1 (or not finite) and 32-bit integer pixels have no defined scale and
    raise `UnsupportedImageError`. Every other mode (L, P, RGBA, CMYK, 16-bit RGB PNGs that
    PIL already reduces to 8 bits, ...) goes through ``convert("RGB")``.
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and image.format == "PPM"):
        pixels = np.asarray(image).astype(np.uint32)
        if pixels.max(initial=0) > 0xFFFF:
            raise UnsupportedImageError(f"{mode} pixels above 65535: not a 16-bit image")
        return Image.fromarray((pixels >> 8).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        pixels = np.asarray(image, dtype=np.float32)
        if not np.isfinite(pixels).all():
            raise UnsupportedImageError("unsupported float image: pixels are not finite, not 0..1")
        if pixels.min(initial=0.0) < 0.0 or pixels.max(initial=0.0) > 1.0:
            raise UnsupportedImageError(
                f"unsupported float image: pixels span {float(pixels.min()):.4g}..{float(pixels.max()):.4g}, not 0..1"
            )
        return Image.fromarray((pixels * (256 - 1e-3)).astype(np.uint8), "L").convert("RGB")
    if mode.startswith("I"):
        raise UnsupportedImageError(
            f"unsupported image mode {mode} (32-bit integer pixels have no defined 8-bit scale)"
        )
    return image.convert("RGB")


def decode_image(data: bytes) -> Image.Image:
    """Fully decode encoded bytes into an upright 8-bit RGB PIL image.

    The EXIF orientation is applied (``ImageOps.exif_transpose``), so a phone photo stored
    sideways is embedded the way it is shown; high bit depths are scaled by `to_rgb`. Raises
    on empty, corrupt or unsupported data.
    """
    if not data:
        raise ValueError("empty file")
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        upright = ImageOps.exif_transpose(image)
        upright.format = image.format
        return to_rgb(upright)


def failure_reason(exc: BaseException) -> str:
    """A short, deterministic one-line reason for a read/decode failure."""
    if isinstance(exc, UnidentifiedImageError):
        return "cannot identify image file"
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"cannot read file: {exc.strerror}"
    text = _OBJECT_REPR.sub("", str(exc)).strip().splitlines()
    reason = text[0] if text else type(exc).__name__
    return reason[:_MAX_REASON]


def view_seed(seed: int, record_id: str, view: int) -> int:
    """A 63-bit seed that depends only on (seed, record id, view index), never on process state."""
    digest = hashlib.sha256(f"{seed}\0{view}\0{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class ImageRecordDataset(Dataset):
    """Item i = (i, stacked views of records[i], ok, error).

    View 0 is `preprocess(image)`; views 1..`views` are `augment_preprocess(image)` (default:
    `build_augment(preprocess)`) under torch/python RNGs seeded by `view_seed`. Read and decode
    errors become failed items; an error raised by the preprocess itself is a bug and propagates.
    """

    def __init__(
        self,
        source: Source,
        records: Sequence[Record],
        preprocess: Callable[[Image.Image], torch.Tensor],
        *,
        views: int = 0,
        seed: int = 0,
        augment_preprocess: Callable[[Image.Image], torch.Tensor] | None = None,
    ) -> None:
        if views < 0:
            raise ValueError(f"views must be >= 0, got {views}")
        self.source = source
        self.records = list(records)
        self.preprocess = preprocess
        self.views = views
        self.seed = seed
        self.augment_preprocess = augment_preprocess
        if views and augment_preprocess is None:
            self.augment_preprocess = build_augment(preprocess)
        self._blank_shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def _blank(self) -> torch.Tensor:
        """Zeros shaped like a successful item, found once by preprocessing a black image."""
        if self._blank_shape is None:
            shape = tuple(self.preprocess(Image.new("RGB", (64, 64))).shape)
            self._blank_shape = (1 + self.views, *shape)
        return torch.zeros(self._blank_shape)

    def _augmented(self, image: Image.Image, record_id: str, view: int) -> torch.Tensor:
        augment = self.augment_preprocess
        assert augment is not None  # set whenever views > 0
        seed = view_seed(self.seed, record_id, view)
        python_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            try:
                return augment(image)
            finally:
                random.setstate(python_state)

    def __getitem__(self, index: int) -> ImageItem:
        record = self.records[index]
        try:
            image = decode_image(self.source.read_bytes(record))
        except Exception as exc:  # any read/decode failure is a bad row, not a crash
            return ImageItem(index, self._blank(), False, failure_reason(exc))
        tensors = [self.preprocess(image)]
        tensors += [self._augmented(image, record.id, v) for v in range(1, self.views + 1)]
        return ImageItem(index, torch.stack(tensors), True, "")


def collate(items: Sequence[ImageItem]) -> ImageBatch:
    """Stack a list of items into one `ImageBatch`."""
    return ImageBatch(
        indices=torch.tensor([item.position for item in items], dtype=torch.long),
        images=torch.stack([item.images for item in items]),
        ok=torch.tensor([item.ok for item in items], dtype=torch.bool),
        errors=[item.error for item in items],
    )


def make_loader(dataset: Dataset, batch_size: int, workers: int, pin_memory: bool = False) -> DataLoader:
    """An in-order DataLoader of `ImageBatch`es (`EncodedBatch`es for an `EncodedImageDataset`);
    workers=0 decodes in the calling process. ``pin_memory`` puts batches in page-locked memory,
    so the copies to a GPU can be asynchronous."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_encoded if isinstance(dataset, EncodedImageDataset) else collate,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
    )


class EncodedItem(NamedTuple):
    """One item for tensor decoding: JPEG bytes (uint8 1-D), a PIL-preprocessed (3, H, W) float
    tensor (not a plain JPEG), or None (unreadable: ok False and the reason)."""

    position: int
    payload: torch.Tensor | None
    ok: bool
    error: str


class EncodedBatch(NamedTuple):
    """A collated batch of `EncodedItem`s: indices (B,), payloads, ok (B,), one reason per row."""

    indices: torch.Tensor
    payloads: list[torch.Tensor | None]
    ok: torch.Tensor
    errors: list[str]


class EncodedImageDataset(Dataset):
    """Item i = (i, the encoded bytes of records[i] when tensor decoding reproduces PIL on them,
    else its PIL-preprocessed tensor, ok, error): the workers read files and the decoding
    happens in the main process, on the encoder's device (`featurestore.extract.tensor_decoding`)."""

    def __init__(self, source: Source, records: Sequence[Record],
                 preprocess: Callable[[Image.Image], torch.Tensor]) -> None:
        self.source = source
        self.records = list(records)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> EncodedItem:
        from featurestore.extract.tensor_decoding import jpeg_for_tensor_path

        try:
            data = self.source.read_bytes(self.records[index])
            if jpeg_for_tensor_path(data):
                return EncodedItem(index, torch.frombuffer(bytearray(data), dtype=torch.uint8), True, "")
            image = decode_image(data)
        except Exception as exc:  # any read/decode failure is a bad row, not a crash
            return EncodedItem(index, None, False, failure_reason(exc))
        return EncodedItem(index, self.preprocess(image), True, "")


def collate_encoded(items: Sequence[EncodedItem]) -> EncodedBatch:
    """Gather a list of `EncodedItem`s into one `EncodedBatch` (payloads stay a list: sizes differ)."""
    return EncodedBatch(
        indices=torch.tensor([item.position for item in items], dtype=torch.long),
        payloads=[item.payload for item in items],
        ok=torch.tensor([item.ok for item in items], dtype=torch.bool),
        errors=[item.error for item in items],
    )

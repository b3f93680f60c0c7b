"""The extraction pipeline: source records -> decoded batches -> frozen encoder -> store chunks.

Three stages overlap, so the encoder is the bottleneck: DataLoader workers read (and, with
``decode="pil"``, decode and preprocess) images; the main thread encodes; a writer thread
commits the previous batch to the store (`featurestore.extract.chunk_writer`). With
``decode="tensor"`` the workers only read the files and the main thread decodes each batch
on the encoder's device (nvjpeg on a GPU, `featurestore.extract.tensor_decoding`). On CUDA the
batches come in page-locked memory and are copied asynchronously, the forward runs under
autocast (fp16/bf16), convolutional models take channels_last inputs, and the batch size is
picked to fit the GPU's memory when not given.

Every batch is one committed chunk (see ``FeatureStore.write_features``): a run killed at any
moment resumes where it stopped, with no duplicate and no gap, and a re-run over finished
rows only reads the store's masks.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from featurestore.errors import EncoderError, SourceError
from featurestore.store.feature_store import FeatureStore

DECODE_MODES = ("auto", "pil", "tensor")
CPU_BATCH_SIZE = 64
JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")


@dataclass
class ExtractReport:
    """What one extraction did (``decode``: pil or tensor; ``pil_decoded``: images the tensor
    path handed to PIL)."""

    split: str
    encoder: str
    rows: int
    skipped: int
    extracted: int
    failed: int
    seconds: float
    decode: str = "pil"
    batch_size: int = 0
    workers: int = 0
    pil_decoded: int = 0

    @property
    def images_per_second(self) -> float:
        return self.extracted / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        text = (f"split {self.split!r}, encoder {self.encoder}: {self.rows} rows, {self.extracted} extracted "
                f"({self.images_per_second:.1f} img/s), {self.skipped} already there, {self.failed} unreadable")
        if self.decode == "tensor" and self.pil_decoded:
            text += (f"; {self.pil_decoded} images decoded by PIL, not on the device "
                     "(not plain RGB/grey JPEGs, EXIF-rotated, or rejected by the device decoder)")
        return text


def unit_rows(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw embeddings (..., D) -> (L2-normalized rows, their norms); a zero row stays zero.
    The store keeps both, so ``features * norms`` gives the encoder's raw outputs back."""
    norms = np.linalg.norm(raw, axis=-1)
    return raw / np.maximum(norms, 1e-12)[..., None], norms.astype(np.float32)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_workers(decode: str = "pil", cores: int | None = None) -> int:
    """DataLoader workers sized to the cores: with PIL decoding every core but the one the main
    thread encodes on (at most 32); with tensor decoding the workers only read files and parse
    JPEG headers, so a quarter of the cores (1 to 8) keep up."""
    cores = usable_cores() if cores is None else cores
    if decode == "tensor":
        return max(1, min(8, cores // 4))
    return max(1, min(32, cores - 1))


def resolve_decode(decode: str, device: Any, records: list, preprocessing: dict[str, Any], views: int = 0) -> str:
    """``auto`` -> ``tensor`` when the encoder runs on CUDA, at least half the records are JPEG
    files, no augmented views are asked for and the preprocessing runs on tensors; else ``pil``.
    ``tensor`` is refused (EncoderError) where it cannot reproduce the PIL path."""
    from featurestore.encoders.preprocessing import Preprocessing
    from featurestore.extract.tensor_decoding import tensor_unsupported

    if decode not in DECODE_MODES:
        raise EncoderError(f"decode must be one of {', '.join(DECODE_MODES)}, not {decode!r}")
    why = tensor_unsupported(Preprocessing.from_dict(preprocessing))
    if decode == "tensor":
        if views:
            raise EncoderError("augmented views (--views) are made by PIL transforms: use --decode cpu with --views")
        if why:
            raise EncoderError(f"this encoder's preprocessing cannot run on tensors: {why}; use --decode cpu")
        return "tensor"
    if decode == "pil" or getattr(device, "type", str(device)) != "cuda" or views or why:
        return "pil"
    jpegs = sum(str(r.path).lower().endswith(JPEG_SUFFIXES) for r in records)
    return "tensor" if 2 * jpegs >= len(records) else "pil"


def _conv_layers(model: Any) -> int:
    import torch

    return sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())


class DeviceForward:
    """The encoder's raw image forward as extraction runs it: inputs copied to the device
    without blocking (from page-locked memory on CUDA), channels_last for convolutional models
    on CUDA (a ViT's only convolution is its patch embedding: left as it is), autocast in the
    encoder's half precision on CUDA. Returns the raw float32 embeddings on the host."""

    def __init__(self, encoder: Any) -> None:
        import torch

        self.encoder = encoder
        self.forward = encoder.image_forward or encoder.model.encode_image
        self.cuda = encoder.device.type == "cuda"
        self.autocast = self.cuda and encoder.dtype in (torch.float16, torch.bfloat16)
        self.channels_last = self.cuda and _conv_layers(encoder.model) > 1
        if self.channels_last:
            encoder.model.to(memory_format=torch.channels_last)

    def __call__(self, images: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            batch = images.to(self.encoder.device, dtype=self.encoder.dtype, non_blocking=True)
            if self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=self.encoder.dtype, enabled=self.autocast):
                out = self.forward(batch)
            return out.float().cpu().numpy()


def extract(source: Any, store_path: str | os.PathLike, encoder: Any, *, split: str | None = None,
            batch_size: int | None = None, workers: int | None = None, views: int = 0, seed: int = 0,
            dtype: str | None = None, decode: str = "auto", overlap_writes: bool = True,
            quiet: bool = False) -> ExtractReport:
    """Embed every record of ``source`` with ``encoder`` into ``split`` of the store.

    Rows already extracted by this encoder are skipped; unreadable images are recorded in the
    split's errors and marked invalid. ``views`` > 0 also stores that many seeded random
    augmented views per image. ``dtype`` of the stored features defaults to float32 for fp32
    encoders and float16 otherwise. ``decode``: ``pil`` (PIL in the workers), ``tensor``
    (torchvision on the encoder's device) or ``auto`` (see `resolve_decode`). ``batch_size``
    defaults to 64 on CPU and to the largest that fits the free memory on CUDA; ``workers`` to
    `default_workers`. ``overlap_writes=False`` commits each batch before encoding the next.
    """
    from tqdm.auto import tqdm

    from featurestore.extract.chunk_writer import ChunkWriter
    from featurestore.extract.image_dataset import EncodedImageDataset, ImageRecordDataset, make_loader

    start = time.perf_counter()
    split = split or source.name
    records = source.records()
    if not records:
        raise SourceError(f"{getattr(source, 'spec', '') or source.name} lists no images; nothing to extract")
    dtype = dtype or ("float32" if encoder.info["precision"] == "fp32" else "float16")
    mode = resolve_decode(decode, encoder.device, records, encoder.info["preprocess"], views)
    with FeatureStore(store_path, mode="a") as store:
        captions = [r.caption for r in records]
        rows = store.add_rows(
            split,
            ids=[r.id for r in records],
            paths=[r.path for r in records],
            labels=[r.label for r in records],
            captions=captions if any(c is not None for c in captions) else None,
            classes=source.classes,
            source=str(getattr(source, "spec", "")),
        )
        store.ensure_encoder(encoder.key, encoder.info)
        store.prepare_features(encoder.key, split, encoder.embed_dim, dtype, views, seed=seed if views else None,
                               norms=True)
        pending = store.pending_rows(encoder.key, split, np.sort(rows), views)
        report = ExtractReport(split, encoder.key, len(records), len(records) - len(pending), 0, 0, 0.0, decode=mode)
        if len(pending) == 0:
            report.seconds = time.perf_counter() - start
            return report
        record_at_row = {int(row): records[i] for i, row in enumerate(rows)}
        todo = [record_at_row[int(row)] for row in pending]
        store.begin_appending()
        cuda = encoder.device.type == "cuda"
        if batch_size is None:
            from featurestore.extract.device_batch import pick_batch_size

            batch_size = pick_batch_size(encoder, views) if cuda else CPU_BATCH_SIZE
        workers = default_workers(mode) if workers is None else workers
        report.batch_size, report.workers = batch_size, workers
        forward = DeviceForward(encoder)
        decoder = None
        if mode == "tensor":
            from featurestore.encoders.preprocessing import Preprocessing
            from featurestore.extract.tensor_decoding import TensorDecoder

            decoder = TensorDecoder(Preprocessing.from_dict(encoder.info["preprocess"]), encoder.device,
                                    encoder.preprocess)
            dataset: EncodedImageDataset | ImageRecordDataset = EncodedImageDataset(source, todo, encoder.preprocess)
        else:
            dataset = ImageRecordDataset(source, todo, encoder.preprocess, views=views, seed=seed)
        loader = make_loader(dataset, batch_size=batch_size, workers=workers, pin_memory=cuda)
        encode_start = time.perf_counter()
        with tqdm(total=len(todo), unit="img", desc=f"extract {split}", disable=quiet, dynamic_ncols=True) as bar, \
                ChunkWriter(store, encoder.key, split, dtype, views, overlap=overlap_writes) as writer:
            for batch in loader:
                batch_rows = pending[batch.indices.numpy()]
                if decoder is not None:
                    images, ok_tensor, errors = decoder(batch.payloads, batch.ok, batch.errors)
                    images = images[:, None]
                else:
                    images, ok_tensor, errors = batch.images, batch.ok, batch.errors
                b, v1 = images.shape[:2]
                raw = forward(images.reshape(b * v1, *images.shape[2:]))
                flat, norms = unit_rows(raw.reshape(b, v1, -1))
                ok = ok_tensor.numpy()
                flat[~ok] = 0.0
                norms[~ok] = 0.0
                writer.put(batch_rows, flat, norms, ok, errors)
                report.extracted += int(ok.sum())
                report.failed += int((~ok).sum())
                bar.update(b)
        if decoder is not None:
            report.pil_decoded = decoder.pil_decoded
        report.seconds = time.perf_counter() - encode_start
    return report

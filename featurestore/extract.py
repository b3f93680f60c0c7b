"""The extraction pipeline: source records -> decoded batches -> frozen encoder -> store chunks.

Decoding and preprocessing run in DataLoader workers while the main process encodes, so the
encoder is the bottleneck. Every batch is one committed chunk (see ``FeatureStore.write_features``):
a run killed at any moment resumes where it stopped, with no duplicate and no gap, and a
re-run over finished rows only reads the store's masks.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from featurestore.errors import SourceError
from featurestore.store import FeatureStore


@dataclass
class ExtractReport:
    """What one extraction did."""

    split: str
    encoder: str
    rows: int
    skipped: int
    extracted: int
    failed: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.extracted / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (f"split {self.split!r}, encoder {self.encoder}: {self.rows} rows, {self.extracted} extracted "
                f"({self.images_per_second:.1f} img/s), {self.skipped} already there, {self.failed} unreadable")


def unit_rows(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw embeddings (..., D) -> (L2-normalized rows, their norms); a zero row stays zero.
    The store keeps both, so ``features * norms`` gives the encoder's raw outputs back."""
    norms = np.linalg.norm(raw, axis=-1)
    return raw / np.maximum(norms, 1e-12)[..., None], norms.astype(np.float32)


def default_workers() -> int:
    """Decoding workers: leave one core to the encoder."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def extract(source: Any, store_path: str | os.PathLike, encoder: Any, *, split: str | None = None,
            batch_size: int = 64, workers: int | None = None, views: int = 0, seed: int = 0,
            dtype: str | None = None, quiet: bool = False) -> ExtractReport:
    """Embed every record of ``source`` with ``encoder`` into ``split`` of the store.

    Rows already extracted by this encoder are skipped; unreadable images are recorded in the
    split's errors and marked invalid. ``views`` > 0 also stores that many seeded random
    augmented views per image. ``dtype`` of the stored features defaults to float32 for fp32
    encoders and float16 otherwise.
    """
    from tqdm.auto import tqdm

    from featurestore.image_dataset import ImageRecordDataset, make_loader

    start = time.perf_counter()
    split = split or source.name
    records = source.records()
    if not records:
        raise SourceError(f"{getattr(source, 'spec', '') or source.name} lists no images; nothing to extract")
    dtype = dtype or ("float32" if encoder.info["precision"] == "fp32" else "float16")
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
        report = ExtractReport(split, encoder.key, len(records), len(records) - len(pending), 0, 0, 0.0)
        if len(pending) == 0:
            report.seconds = time.perf_counter() - start
            return report
        record_at_row = {int(row): records[i] for i, row in enumerate(rows)}
        todo = [record_at_row[int(row)] for row in pending]
        store.begin_appending()
        dataset = ImageRecordDataset(source, todo, encoder.preprocess, views=views, seed=seed)
        workers = default_workers() if workers is None else workers
        pin = encoder.device.type == "cuda"
        loader = make_loader(dataset, batch_size=batch_size, workers=workers, pin_memory=pin)
        encode_start = time.perf_counter()
        with tqdm(total=len(todo), unit="img", desc=f"extract {split}", disable=quiet, dynamic_ncols=True) as bar:
            for batch in loader:
                batch_rows = pending[batch.indices.numpy()]
                b, v1 = batch.images.shape[:2]
                raw = encoder.encode_images(batch.images.reshape(b * v1, *batch.images.shape[2:]), normalize=False)
                flat, norms = unit_rows(raw.reshape(b, v1, -1))
                ok = batch.ok.numpy()
                flat[~ok] = 0.0
                norms[~ok] = 0.0
                store.write_features(encoder.key, split, batch_rows, flat[:, 0].astype(dtype), ok, batch.errors,
                                     norms=norms[:, 0],
                                     views=flat[:, 1:].astype(dtype) if views else None)
                report.extracted += int(ok.sum())
                report.failed += int((~ok).sum())
                bar.update(b)
        report.seconds = time.perf_counter() - encode_start
    return report

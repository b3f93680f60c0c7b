"""Choosing the extraction batch size on a GPU: the largest that fits its free memory.

The memory one image takes in a forward pass is measured (peak allocated memory of a small
probe batch), the batch is sized to a fraction of the free memory with it, rounded down to a
power of two and capped, and then tried: a batch that still runs out of memory is halved.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_BATCH = 1024
MEMORY_FRACTION = 0.6
PROBE_BATCH = 8


def batch_size_for_memory(free_bytes: int, bytes_per_image: float, *, images_per_row: int = 1,
                          fraction: float = MEMORY_FRACTION, limit: int = MAX_BATCH) -> int:
    """The largest power of two ``b`` <= ``limit`` with ``b * images_per_row * bytes_per_image``
    within ``fraction`` of ``free_bytes``; at least 1."""
    per_row = max(float(bytes_per_image), 1.0) * max(1, images_per_row)
    fits = int(fraction * free_bytes // per_row)
    size = 1
    while size * 2 <= min(fits, limit):
        size *= 2
    return size


def largest_that_runs(run: Callable[[int], Any], start: int, is_out_of_memory: Callable[[BaseException], bool],
                      on_failure: Callable[[], Any] = lambda: None) -> int:
    """Try ``run(start)``, halving while it runs out of memory; the first size that runs.
    Raises the last out-of-memory error when even a batch of 1 does not fit."""
    size = max(1, int(start))
    while True:
        try:
            run(size)
            return size
        except BaseException as exc:
            if not is_out_of_memory(exc) or size == 1:
                raise
            on_failure()
            size //= 2


def pick_batch_size(encoder: Any, views: int = 0, limit: int = MAX_BATCH) -> int:
    """The batch size (rows of 1 + ``views`` images) for ``encoder`` on its CUDA device."""
    import torch

    device = encoder.device
    height, width = encoder.info["preprocess"]["size"]

    def forward(size: int) -> None:
        images = torch.zeros(size * (1 + views), 3, height, width, device=device, dtype=encoder.dtype)
        with torch.inference_mode(), torch.autocast("cuda", dtype=encoder.dtype,
                                                    enabled=encoder.dtype != torch.float32):
            (encoder.image_forward or encoder.model.encode_image)(images)
        torch.cuda.synchronize(device)

    def release() -> None:
        torch.cuda.empty_cache()

    release()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    forward(PROBE_BATCH)
    per_image = (torch.cuda.max_memory_allocated(device) - before) / (PROBE_BATCH * (1 + views))
    free, _ = torch.cuda.mem_get_info(device)
    start = batch_size_for_memory(free, per_image, images_per_row=1 + views, limit=limit)
    size = largest_that_runs(forward, start, lambda exc: isinstance(exc, torch.cuda.OutOfMemoryError), release)
    release()
    return size

"""Extraction: source records -> decoded image batches -> frozen encoder -> store chunks, in one process
or sharded on Dask."""
from __future__ import annotations

from featurestore.extract.augment import build_augment, input_size
from featurestore.extract.chunk_writer import ChunkWriter
from featurestore.extract.device_batch import batch_size_for_memory, largest_that_runs, pick_batch_size
from featurestore.extract.image_dataset import (
    EncodedImageDataset,
    ImageRecordDataset,
    UnsupportedImageError,
    decode_image,
    failure_reason,
    make_loader,
)
from featurestore.extract.pipeline import (
    DeviceForward,
    ExtractReport,
    default_workers,
    extract,
    resolve_decode,
    unit_rows,
    usable_cores,
)
from featurestore.extract.sharded import EncoderSpec, ShardedReport, extract_distributed, shard_dir
from featurestore.extract.tensor_decoding import (
    TensorDecoder,
    TensorPreprocess,
    jpeg_for_tensor_path,
    tensor_unsupported,
)

__all__ = [
    "ChunkWriter", "DeviceForward", "EncodedImageDataset", "EncoderSpec", "ExtractReport", "ImageRecordDataset",
    "ShardedReport", "TensorDecoder", "TensorPreprocess", "UnsupportedImageError", "batch_size_for_memory",
    "build_augment", "decode_image", "default_workers", "extract", "extract_distributed", "failure_reason",
    "input_size", "jpeg_for_tensor_path", "largest_that_runs", "make_loader", "pick_batch_size", "resolve_decode",
    "shard_dir", "tensor_unsupported", "unit_rows", "usable_cores"
]

"""Extraction: source records -> decoded image batches -> frozen encoder -> store chunks, in one process
or sharded on Dask."""
from __future__ import annotations

from featurestore.extract.augment import build_augment, input_size
from featurestore.extract.chunk_writer import ChunkWriter
from featurestore.extract.device_batch import batch_size_for_memory, largest_that_runs, pick_batch_size
from featurestore.extract.image_dataset import (
    EncodedBatch,
    EncodedImageDataset,
    EncodedItem,
    ImageBatch,
    ImageItem,
    ImageRecordDataset,
    UnsupportedImageError,
    collate,
    collate_encoded,
    decode_image,
    failure_reason,
    make_loader,
    to_rgb,
    view_seed,
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
from featurestore.extract.sharded import (
    EncoderSpec,
    RecordSubset,
    ShardedReport,
    extract_distributed,
    extract_shard,
    shard_dir,
)
from featurestore.extract.tensor_decoding import (
    TensorDecoder,
    TensorPreprocess,
    jpeg_for_tensor_path,
    tensor_unsupported,
)

__all__ = [
    "ChunkWriter", "DeviceForward", "EncodedBatch", "EncodedImageDataset", "EncodedItem", "EncoderSpec",
    "ExtractReport", "ImageBatch", "ImageItem", "ImageRecordDataset", "RecordSubset", "ShardedReport", "TensorDecoder",
    "TensorPreprocess", "UnsupportedImageError", "batch_size_for_memory", "build_augment", "collate", "collate_encoded",
    "decode_image", "default_workers", "extract", "extract_distributed", "extract_shard", "failure_reason",
    "input_size", "jpeg_for_tensor_path", "largest_that_runs", "make_loader", "pick_batch_size", "resolve_decode",
    "shard_dir", "tensor_unsupported", "to_rgb", "unit_rows", "usable_cores", "view_seed"
]

"""Extraction: source records -> decoded image batches -> frozen encoder -> store chunks, in one process or sharded on Dask."""
from __future__ import annotations

from featurestore.extract.augment import input_size, build_augment
from featurestore.extract.chunk_writer import ChunkWriter
from featurestore.extract.device_batch import batch_size_for_memory, largest_that_runs, pick_batch_size
from featurestore.extract.image_dataset import ImageItem, ImageBatch, UnsupportedImageError, to_rgb, decode_image, failure_reason, view_seed, ImageRecordDataset, collate, make_loader, EncodedItem, EncodedBatch, EncodedImageDataset, collate_encoded
from featurestore.extract.pipeline import ExtractReport, unit_rows, usable_cores, default_workers, resolve_decode, DeviceForward, extract
from featurestore.extract.sharded import EncoderSpec, RecordSubset, ShardedReport, extract_shard, shard_dir, extract_distributed
from featurestore.extract.tensor_decoding import tensor_unsupported, jpeg_for_tensor_path, TensorPreprocess, TensorDecoder

__all__ = ["ChunkWriter", "DeviceForward", "EncodedBatch", "EncodedImageDataset", "EncodedItem", "EncoderSpec", "ExtractReport", "ImageBatch", "ImageItem", "ImageRecordDataset", "RecordSubset", "ShardedReport", "TensorDecoder", "TensorPreprocess", "UnsupportedImageError", "batch_size_for_memory", "build_augment", "collate", "collate_encoded", "decode_image", "default_workers", "extract", "extract_distributed", "extract_shard", "failure_reason", "input_size", "jpeg_for_tensor_path", "largest_that_runs", "make_loader", "pick_batch_size", "resolve_decode", "shard_dir", "tensor_unsupported", "to_rgb", "unit_rows", "usable_cores", "view_seed"]

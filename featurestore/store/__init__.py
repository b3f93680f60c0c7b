"""The HDF5 feature store: the reader/writer, its files, lock, superblock repair, verification,
virtual (sharded) splits."""
from __future__ import annotations

from featurestore.store.feature_store import FeatureStore, h5_name
from featurestore.store.files import file_size, is_open_for_write_error, looks_empty, mark_state, open_reader
from featurestore.store.shard_consolidation import check_shard_files, consolidate, linked_datasets, missing_shard_files
from featurestore.store.split_names import SplitNameError, check_split_name, split_name_problem
from featurestore.store.summary import error_reasons, summarize
from featurestore.store.superblock import clear_consistency_flags, consistency_flags, lookup3, superblock_eof
from featurestore.store.verify import VerifyReport, raise_if_damaged, verify_store
from featurestore.store.virtual_split import link_shards
from featurestore.store.write_points import reset, write_point
from featurestore.store.writer_lock import WriterLock, held_by_this_process, hold_if_free, pid_alive

__all__ = [
    "FeatureStore", "SplitNameError", "VerifyReport", "WriterLock", "check_shard_files", "check_split_name",
    "clear_consistency_flags", "consistency_flags", "consolidate", "error_reasons", "file_size", "h5_name",
    "held_by_this_process", "hold_if_free", "is_open_for_write_error", "link_shards", "linked_datasets", "looks_empty",
    "lookup3", "mark_state", "missing_shard_files", "open_reader", "pid_alive", "raise_if_damaged", "reset",
    "split_name_problem", "summarize", "superblock_eof", "verify_store", "write_point"
]

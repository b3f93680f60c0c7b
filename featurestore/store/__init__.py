"""The HDF5 feature store: the reader/writer, its files, lock, superblock repair, verification, virtual (sharded) splits."""
from __future__ import annotations

from featurestore.store.feature_store import h5_name, FeatureStore
from featurestore.store.files import is_open_for_write_error, file_size, looks_empty, open_reader, mark_state
from featurestore.store.shard_consolidation import linked_datasets, missing_shard_files, check_shard_files, consolidate
from featurestore.store.split_names import SplitNameError, split_name_problem, check_split_name
from featurestore.store.summary import error_reasons, summarize
from featurestore.store.superblock import lookup3, consistency_flags, clear_consistency_flags, superblock_eof
from featurestore.store.verify import VerifyReport, verify_store, raise_if_damaged
from featurestore.store.virtual_split import link_shards
from featurestore.store.write_points import write_point, reset
from featurestore.store.writer_lock import pid_alive, held_by_this_process, WriterLock, hold_if_free

__all__ = ["FeatureStore", "SplitNameError", "VerifyReport", "WriterLock", "check_shard_files", "check_split_name", "clear_consistency_flags", "consistency_flags", "consolidate", "error_reasons", "file_size", "h5_name", "held_by_this_process", "hold_if_free", "is_open_for_write_error", "link_shards", "linked_datasets", "looks_empty", "lookup3", "mark_state", "missing_shard_files", "open_reader", "pid_alive", "raise_if_damaged", "reset", "split_name_problem", "summarize", "superblock_eof", "verify_store", "write_point"]

"""The HDF5 feature store: the reader/writer, its files, lock, superblock repair, verification,
virtual (sharded) splits."""
from __future__ import annotations

from featurestore.store.feature_store import FeatureStore, h5_name
from featurestore.store.files import open_reader
from featurestore.store.shard_consolidation import consolidate, linked_datasets
from featurestore.store.split_names import SplitNameError, check_split_name
from featurestore.store.summary import error_reasons, summarize
from featurestore.store.superblock import clear_consistency_flags, consistency_flags, lookup3
from featurestore.store.verify import VerifyReport, raise_if_damaged, verify_store
from featurestore.store.virtual_split import link_shards
from featurestore.store.writer_lock import WriterLock, pid_alive

__all__ = [
    "FeatureStore", "SplitNameError", "VerifyReport", "WriterLock", "check_split_name", "clear_consistency_flags",
    "consistency_flags", "consolidate", "error_reasons", "h5_name", "link_shards", "linked_datasets", "lookup3",
    "open_reader", "pid_alive", "raise_if_damaged", "summarize", "verify_store"
]

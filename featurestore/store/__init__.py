"""The HDF5 feature store: the reader/writer, its files, lock, superblock repair, verification,
virtual (sharded) splits.

The names below are imported from their modules on first use (``featurestore.lazy_exports``):
reading a store does not import verification, consolidation or the summary."""
from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore.lazy_exports import lazy_exports

if TYPE_CHECKING:  # the same names, for type checkers (tests/test_import_paths.py checks both agree)
    from featurestore.store.feature_store import FeatureStore, h5_name
    from featurestore.store.files import open_reader
    from featurestore.store.shard_consolidation import consolidate, linked_datasets
    from featurestore.store.split_names import SplitNameError, check_split_name
    from featurestore.store.summary import error_reasons, summarize
    from featurestore.store.superblock import clear_consistency_flags, consistency_flags, lookup3
    from featurestore.store.verify import VerifyReport, raise_if_damaged, verify_store
    from featurestore.store.virtual_split import link_shards
    from featurestore.store.writer_lock import WriterLock, pid_alive

_EXPORTS = {
    **dict.fromkeys(("FeatureStore", "h5_name"), "feature_store"),
    "open_reader": "files",
    **dict.fromkeys(("consolidate", "linked_datasets"), "shard_consolidation"),
    **dict.fromkeys(("SplitNameError", "check_split_name"), "split_names"),
    **dict.fromkeys(("error_reasons", "summarize"), "summary"),
    **dict.fromkeys(("clear_consistency_flags", "consistency_flags", "lookup3"), "superblock"),
    **dict.fromkeys(("VerifyReport", "raise_if_damaged", "verify_store"), "verify"),
    "link_shards": "virtual_split",
    **dict.fromkeys(("WriterLock", "pid_alive"), "writer_lock"),
}
__all__ = [
    "FeatureStore", "SplitNameError", "VerifyReport", "WriterLock", "check_split_name", "clear_consistency_flags",
    "consistency_flags", "consolidate", "error_reasons", "h5_name", "link_shards", "linked_datasets", "lookup3",
    "open_reader", "pid_alive", "raise_if_damaged", "summarize", "verify_store"
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

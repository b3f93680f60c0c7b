"""FAISS indexes over a store's features: building, the files beside the store, the choice of index, search tuning."""
from __future__ import annotations

from featurestore.index.files import name_part, factory_slug, index_paths, legacy_index_paths, sidecars, glob_escape, read_sidecar, save_pair, store_mode, atomic_write, remove_leftovers, write_error
from featurestore.index.plan import parse_memory, parse_duration, format_bytes, ivf_lists, pq_subquantizers, estimate_memory, choose_factory, train_rows
from featurestore.index.store_index import StoreIndex, build_index, load_index, index_names, exact_topk, recall_at_k, ids_fingerprint, DEFAULT_RECALL
from featurestore.index.tuning import knobs, set_params, quantizer_ef_search, ladder, query_recalls, tune

__all__ = ["DEFAULT_RECALL", "StoreIndex", "atomic_write", "build_index", "choose_factory", "estimate_memory", "exact_topk", "factory_slug", "format_bytes", "glob_escape", "ids_fingerprint", "index_names", "index_paths", "ivf_lists", "knobs", "ladder", "legacy_index_paths", "load_index", "name_part", "parse_duration", "parse_memory", "pq_subquantizers", "quantizer_ef_search", "query_recalls", "read_sidecar", "recall_at_k", "remove_leftovers", "save_pair", "set_params", "sidecars", "store_mode", "train_rows", "tune", "write_error"]

"""FAISS indexes over a store's features: building, the files beside the store, the choice of index, search tuning."""
from __future__ import annotations

from featurestore.index.files import (
    atomic_write,
    factory_slug,
    glob_escape,
    index_paths,
    name_part,
    read_sidecar,
    remove_leftovers,
    save_pair,
    sidecars,
    store_mode,
    write_error,
)
from featurestore.index.plan import (
    choose_factory,
    estimate_memory,
    format_bytes,
    ivf_lists,
    parse_duration,
    parse_memory,
    pq_subquantizers,
    train_rows,
)
from featurestore.index.store_index import (
    DEFAULT_RECALL,
    StoreIndex,
    build_index,
    exact_topk,
    ids_fingerprint,
    index_names,
    load_index,
    recall_at_k,
)
from featurestore.index.tuning import knobs, ladder, quantizer_ef_search, query_recalls, set_params, tune

__all__ = [
    "DEFAULT_RECALL", "StoreIndex", "atomic_write", "build_index", "choose_factory", "estimate_memory", "exact_topk",
    "factory_slug", "format_bytes", "glob_escape", "ids_fingerprint", "index_names", "index_paths", "ivf_lists",
    "knobs", "ladder", "load_index", "name_part", "parse_duration", "parse_memory",
    "pq_subquantizers", "quantizer_ef_search", "query_recalls", "read_sidecar", "recall_at_k", "remove_leftovers",
    "save_pair", "set_params", "sidecars", "store_mode", "train_rows", "tune", "write_error"
]

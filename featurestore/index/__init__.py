"""FAISS indexes over a store's features: building, the files beside the store, the choice of index, search tuning."""
from __future__ import annotations

from featurestore.index.distributed import build_index_distributed
from featurestore.index.files import index_file_problems, index_paths, sidecars
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
from featurestore.index.tuning import knobs, ladder, query_recalls, set_params, tune

__all__ = [
    "DEFAULT_RECALL", "StoreIndex", "build_index", "build_index_distributed", "choose_factory", "estimate_memory",
    "exact_topk", "format_bytes", "ids_fingerprint", "index_file_problems", "index_names", "index_paths", "ivf_lists",
    "knobs", "ladder", "load_index", "parse_duration", "parse_memory", "pq_subquantizers", "query_recalls",
    "recall_at_k", "set_params", "sidecars", "train_rows", "tune"
]

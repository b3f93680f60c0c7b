"""Reading a retrieval pool from a store for the retrieval-based solvers (SuS-X / TIP-X,
CapS-Adapter, REAL-Linear): the pool's captions, the features of chosen pool rows (streamed, so
a pool larger than RAM is never loaded whole), and text-to-image search through the store's
FAISS index. Positions index the pool's valid rows, in row order. Problems a user can cause are
``featurestore.errors.NotFoundError`` with one line each."""
from __future__ import annotations

from typing import Any

import numpy as np

from featurestore.errors import NotFoundError


def check_pool(store: Any, encoder: str, split: str | None) -> str:
    """The pool split name, or a NotFoundError saying why it cannot serve ``encoder``."""
    if not split:
        raise NotFoundError("this solver needs a retrieval pool: give --input pool=SPLIT")
    if split not in store.splits():
        raise NotFoundError(f"no pool split {split!r} in {store.path} (it has: {', '.join(store.splits())})")
    if not store.has_features(encoder, split):
        others = [key for key in store.encoders() if store.has_features(key, split)]
        by = f"it was encoded by {', '.join(repr(o) for o in others)}" if others else "it has no features"
        raise NotFoundError(f"pool split {split!r} has no features of encoder {encoder!r} ({by}); "
                         f"extract it with {encoder!r} so support and test features match")
    return split


def pool_captions(store: Any, split: str) -> np.ndarray:
    """Captions of the pool's valid rows; NotFoundError when the pool has none."""
    captions = store.captions(split)
    if captions is None:
        raise NotFoundError(f"pool split {split!r} has no captions (extract it from shards or a manifest "
                         "with captions, or retrieve by text: --input retrieval=text)")
    return captions


def pool_features_at(store: Any, encoder: str, split: str, positions: np.ndarray,
                     chunk_rows: int = 65536) -> np.ndarray:
    """Features of the pool's valid rows at ``positions`` (any order, repeats allowed), streamed."""
    positions = np.asarray(positions, dtype=np.int64)
    wanted, inverse = np.unique(positions, return_inverse=True)
    parts = []
    for rows, block in store.iter_features(encoder, split, chunk_rows=chunk_rows):
        keep = np.isin(rows, wanted, assume_unique=True)
        if keep.any():
            parts.append(block[keep])
    if not parts:
        return np.zeros((0, store.encoder_info(encoder).get("embed_dim", 0)), np.float32)
    found = np.concatenate(parts)
    if len(found) != len(wanted):
        raise NotFoundError(f"pool split {split!r} has only {store.n_rows(split)} rows; positions out of range")
    return found[inverse]


def nearest_per_query(store: Any, encoder: str, split: str, queries: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` pool positions most cosine-similar to each query (Q, k), through the store's
    FAISS index (built beside the store on first use, rebuilt when stale)."""
    from featurestore.index.store_index import load_index

    index = load_index(store, encoder, split, quiet=True)
    if int(k) > index.ntotal:
        raise NotFoundError(f"pool split {split!r} has {index.ntotal} valid rows, fewer than k={k}")
    _, positions = index.search(np.asarray(queries, dtype=np.float32), int(k))
    return positions

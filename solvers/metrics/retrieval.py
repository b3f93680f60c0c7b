"""Image-text retrieval and alignment metrics on embeddings: recall@K both ways with several
captions per image (as CLIP_benchmark's zero-shot retrieval), CLIPScore (Hessel et al., EMNLP
2021) and the modality gap (Liang et al., NeurIPS 2022).

Exact score ties (duplicate captions or images, identical embeddings) are broken by index: the
lower text or image index is retrieved first, as a stable sort ranks them (``ties="index"``, the
default). CLIP_benchmark retrieves with ``torch.topk``, whose order among exactly tied items is
not specified and on CPU is often not index order, so the two can differ on such queries, and
only on them. How far is bounded by ``ties="worst"`` (every tied wrong item ranked before the
query's own items) and ``ties="best"`` (the query's own items first among ties): recall@K under
any tie order, CLIP_benchmark's included, lies between those two values, and the index rule too.
On continuous scores with no ties the three are equal.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from solvers._base.normalize import l2_normalize
from solvers.errors import InputError
from solvers.metrics.classification import stable_positions


def _cosine(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return l2_normalize(np.asarray(A, dtype=np.float64)) @ l2_normalize(np.asarray(B, dtype=np.float64)).T


def _check_map(caption_image: np.ndarray, n_images: int, n_texts: int) -> np.ndarray:
    index = np.asarray(caption_image, dtype=np.int64)
    if index.shape != (n_texts,) or index.min() < 0 or index.max() >= n_images:
        raise InputError(f"caption_image must give, for each of the {n_texts} captions, an image in [0, {n_images})")
    return index


Ties = Literal["index", "worst", "best"]
TIES = ("index", "worst", "best")


def _tie_bound_positions(sim: np.ndarray, queries: np.ndarray, items: np.ndarray, n_queries: int,
                         ties: Ties) -> np.ndarray:
    """Per query, the 0-based position of its first own item when ties are resolved against it
    (``worst``) or for it (``best``). ``(queries[i], items[i])`` are the (query, own item) pairs;
    a query with no own item gets ``sim.shape[1]`` (never a hit)."""
    own = sim[queries, items]
    top = np.full(n_queries, -np.inf)
    np.maximum.at(top, queries, own)
    has = np.bincount(queries, minlength=n_queries) > 0
    top_col = np.where(has, top, np.inf)[:, None]
    greater = (sim > top_col).sum(axis=1)
    if ties == "best":
        return np.where(has, greater, sim.shape[1])
    equal = (sim == top_col).sum(axis=1)
    own_at_top = np.bincount(queries[own == top[queries]], minlength=n_queries)
    return np.where(has, greater + equal - own_at_top, sim.shape[1])


def _check_ties(ties: str) -> None:
    if ties not in TIES:
        raise InputError(f"ties must be one of {', '.join(TIES)}, got {ties!r}")


def image_to_text_recall(images: np.ndarray, texts: np.ndarray, caption_image: np.ndarray,
                         ks: Sequence[int] = (1, 5, 10), ties: Ties = "index") -> dict[int, float]:
    """Fraction of images with at least one of their captions among the k texts retrieved.

    As CLIP_benchmark: exactly k texts are retrieved, so tied texts are not all counted in the
    query's favour. ``ties="index"``: exact ties are broken by text index (the lower first, a
    stable sort), e.g. two images captioned by the same text cannot both retrieve their own copy
    at k = 1. ``"worst"`` / ``"best"``: the lowest / highest recall any tie order gives (see the
    module doc: CLIP_benchmark's ``torch.topk`` order lies between them).
    """
    _check_ties(ties)
    index = _check_map(caption_image, len(images), len(texts))
    sim = _cosine(images, texts)
    if ties != "index":
        best = _tie_bound_positions(sim, index, np.arange(len(texts)), len(images), ties)
        return {int(k): float(np.mean(best < k)) for k in ks}
    # position of each caption in its own image's ranking; an image's best own caption counts
    positions = stable_positions(sim, np.arange(len(texts)), rows=index)
    best = np.full(len(images), len(texts), dtype=np.int64)
    np.minimum.at(best, index, positions)
    return {int(k): float(np.mean(best < k)) for k in ks}


def text_to_image_recall(images: np.ndarray, texts: np.ndarray, caption_image: np.ndarray,
                         ks: Sequence[int] = (1, 5, 10), ties: Ties = "index") -> dict[int, float]:
    """Fraction of captions whose image is among the k images retrieved (exactly k; ``ties`` as
    in :func:`image_to_text_recall`: ``"index"`` takes the lower image index first)."""
    _check_ties(ties)
    index = _check_map(caption_image, len(images), len(texts))
    sim = _cosine(texts, images)
    if ties != "index":
        position = _tie_bound_positions(sim, np.arange(len(texts)), index, len(texts), ties)
    else:
        position = stable_positions(sim, index)
    return {int(k): float(np.mean(position < k)) for k in ks}


def clip_score(images: np.ndarray, captions: np.ndarray, w: float = 2.5) -> np.ndarray:
    """CLIPScore of paired rows: w * max(cos(image, caption), 0), w = 2.5."""
    a, b = l2_normalize(np.asarray(images, np.float64)), l2_normalize(np.asarray(captions, np.float64))
    return w * np.clip(np.sum(a * b, axis=1), 0.0, None)


def modality_gap(images: np.ndarray, texts: np.ndarray) -> float:
    """||mean of normalized images - mean of normalized texts||_2."""
    a, b = l2_normalize(np.asarray(images, np.float64)), l2_normalize(np.asarray(texts, np.float64))
    return float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))

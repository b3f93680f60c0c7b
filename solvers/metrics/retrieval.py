"""Image-text retrieval and alignment metrics on embeddings: recall@K both ways with several
captions per image (as CLIP_benchmark's zero-shot retrieval), CLIPScore (Hessel et al., EMNLP
2021) and the modality gap (Liang et al., NeurIPS 2022)."""
from __future__ import annotations

from collections.abc import Sequence

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


def image_to_text_recall(images: np.ndarray, texts: np.ndarray, caption_image: np.ndarray,
                         ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Fraction of images with at least one of their captions among the k texts retrieved.

    As CLIP_benchmark (``torch.topk``): exactly k texts are retrieved, so tied texts are not
    counted in the query's favour; ties are broken by text order (a stable sort), e.g. two
    images captioned by the same text cannot both retrieve their own copy at k = 1.
    """
    index = _check_map(caption_image, len(images), len(texts))
    sim = _cosine(images, texts)
    # position of each caption in its own image's ranking; an image's best own caption counts
    positions = stable_positions(sim, np.arange(len(texts)), rows=index)
    best = np.full(len(images), len(texts), dtype=np.int64)
    np.minimum.at(best, index, positions)
    return {int(k): float(np.mean(best < k)) for k in ks}


def text_to_image_recall(images: np.ndarray, texts: np.ndarray, caption_image: np.ndarray,
                         ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Fraction of captions whose image is among the k images retrieved (exactly k, ties broken
    by image order, as CLIP_benchmark's ``torch.topk``)."""
    index = _check_map(caption_image, len(images), len(texts))
    position = stable_positions(_cosine(texts, images), index)
    return {int(k): float(np.mean(position < k)) for k in ks}


def clip_score(images: np.ndarray, captions: np.ndarray, w: float = 2.5) -> np.ndarray:
    """CLIPScore of paired rows: w * max(cos(image, caption), 0), w = 2.5."""
    a, b = l2_normalize(np.asarray(images, np.float64)), l2_normalize(np.asarray(captions, np.float64))
    return w * np.clip(np.sum(a * b, axis=1), 0.0, None)


def modality_gap(images: np.ndarray, texts: np.ndarray) -> float:
    """||mean of normalized images - mean of normalized texts||_2."""
    a, b = l2_normalize(np.asarray(images, np.float64)), l2_normalize(np.asarray(texts, np.float64))
    return float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))

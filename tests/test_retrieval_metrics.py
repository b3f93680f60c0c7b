"""Retrieval metrics against brute force loops and hand formulas."""
from __future__ import annotations

import numpy as np
import pytest

from solvers.metrics.retrieval import clip_score, image_to_text_recall, modality_gap, text_to_image_recall


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_recall_equals_brute_force():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(12, 5))
    caption_image = np.repeat(np.arange(12), 3)[rng.permutation(36)]
    texts = images[caption_image] + rng.normal(scale=1.5, size=(36, 5))
    ks = (1, 3, 5)
    i2t = image_to_text_recall(images, texts, caption_image, ks)
    t2i = text_to_image_recall(images, texts, caption_image, ks)
    for k in ks:
        hits = 0
        for i in range(12):
            order = sorted(range(36), key=lambda j: -_cos(images[i], texts[j]))[:k]
            hits += any(caption_image[j] == i for j in order)
        assert i2t[k] == pytest.approx(hits / 12)
        hits = 0
        for j in range(36):
            order = sorted(range(12), key=lambda i: -_cos(images[i], texts[j]))[:k]
            hits += caption_image[j] in order
        assert t2i[k] == pytest.approx(hits / 36)


def test_clip_score_by_hand():
    v = np.array([[1.0, 0.0], [1.0, 0.0]])
    c = np.array([[1.0, 1.0], [-1.0, 0.2]])
    expected = [2.5 * max(_cos(v[0], c[0]), 0), 0.0]
    np.testing.assert_allclose(clip_score(v, c), expected)


def test_modality_gap_by_hand():
    images = np.array([[2.0, 0.0], [0.0, 3.0]])
    texts = np.array([[-1.0, 0.0], [0.0, -1.0]])
    assert modality_gap(images, texts) == pytest.approx(np.linalg.norm([1.0, 1.0]))


def test_duplicate_captions_are_not_counted_in_the_querys_favour():
    """Images 2 and 3 share the caption text "a dog" (identical embeddings, captions 2 and 3).
    CLIP_benchmark retrieves exactly k texts with torch.topk: image 3's top-1 is caption 2 (the
    tie goes to the earlier text), which belongs to image 2, so recall@1 is 3/4, not 1."""
    images = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.3, 1.0]])
    texts = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    caption_image = np.array([0, 1, 2, 3])
    assert image_to_text_recall(images, texts, caption_image, (1, 2)) == {1: 0.75, 2: 1.0}
    # text -> image with duplicated images: caption 3's tie between images 2 and 3 goes to image 2
    dup_images = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    captions = np.array([[1.0, 0.1], [0.1, 1.0], [1.0, 1.0], [1.0, 1.0]])
    assert text_to_image_recall(dup_images, captions, caption_image, (1, 2)) == {1: 0.75, 2: 1.0}

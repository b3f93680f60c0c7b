"""Retrieval metrics against brute force loops and hand formulas."""
from __future__ import annotations

import numpy as np
import pytest

from solvers.errors import InputError
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


def test_exact_ties_go_to_the_lower_index():
    """Three identical captions: image 0 owns text 0, image 1 texts 1 and 2. Index order retrieves
    texts 0, 1 at k = 2 (both images hit: 1.0); torch.topk's CPU order can put text 2 first
    (texts 2, 1: image 0 misses, 0.5). Worst and best tie orders bound both."""
    images = np.array([[1.0, 0.0], [0.0, 1.0]])
    texts = np.ones((3, 2))
    caption_image = np.array([0, 1, 1])
    assert image_to_text_recall(images, texts, caption_image, (1, 2)) == {1: 0.5, 2: 1.0}
    assert image_to_text_recall(images, texts, caption_image, (1, 2, 3), ties="worst") == {1: 0.0, 2: 0.5, 3: 1.0}
    assert image_to_text_recall(images, texts, caption_image, (1, 2), ties="best") == {1: 1.0, 2: 1.0}
    # text -> image: three identical images; captions own images 0, 0, 2. Index order gives image 0
    # at k = 1 (2/3); the later-index-first order would give image 2 (1/3).
    same = np.ones((3, 2))
    captions = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 2.0]])
    owners = np.array([0, 0, 2])
    assert text_to_image_recall(same, captions, owners, (1, 2)) == pytest.approx({1: 2 / 3, 2: 2 / 3})
    assert text_to_image_recall(same, captions, owners, (1, 3), ties="worst") == pytest.approx({1: 0.0, 3: 1.0})
    assert text_to_image_recall(same, captions, owners, (1,), ties="best") == pytest.approx({1: 1.0})
    with pytest.raises(InputError, match="ties must be one of"):
        text_to_image_recall(same, captions, owners, (1,), ties="torch")  # type: ignore[arg-type]


def _recall_over_tie_orders(sim, own, k):
    """Brute force: every order of the items that sorts by decreasing score (all permutations as
    tie-breakers), per query the lowest and highest hit; recall bounds are their means."""
    import itertools

    low, high = [], []
    for q in range(sim.shape[0]):
        hits = set()
        for perm in itertools.permutations(range(sim.shape[1])):
            rank = {j: r for r, j in enumerate(perm)}
            order = sorted(range(sim.shape[1]), key=lambda j: (-sim[q, j], rank[j]))[:k]
            hits.add(any(j in own[q] for j in order))
        low.append(min(hits))
        high.append(max(hits))
    return float(np.mean(low)), float(np.mean(high))


def test_tie_bounds_equal_brute_force_over_every_tie_order():
    rng = np.random.default_rng(4)
    spread = 0
    for _ in range(3):
        # Few distinct vectors, so many exact ties; some images without a caption.
        palette = rng.normal(size=(3, 4))
        images = palette[rng.integers(0, 3, 6)]
        texts = palette[rng.integers(0, 3, 6)]
        caption_image = rng.integers(0, 5, 6)
        sim_it = np.array([[_cos(a, b) for b in texts] for a in images])
        sim_it = np.round(sim_it, 12)  # the same vector pair gives the same cosine: exact ties
        own_i = [{j for j in range(6) if caption_image[j] == i} for i in range(6)]
        own_t = [{int(caption_image[j])} for j in range(6)]
        for k in (1, 2, 3):
            lo, hi = _recall_over_tie_orders(sim_it, own_i, k)
            spread += hi > lo
            assert image_to_text_recall(images, texts, caption_image, (k,), ties="worst")[k] == pytest.approx(lo)
            assert image_to_text_recall(images, texts, caption_image, (k,), ties="best")[k] == pytest.approx(hi)
            assert lo <= image_to_text_recall(images, texts, caption_image, (k,))[k] <= hi
            lo, hi = _recall_over_tie_orders(sim_it.T, own_t, k)
            assert text_to_image_recall(images, texts, caption_image, (k,), ties="worst")[k] == pytest.approx(lo)
            assert text_to_image_recall(images, texts, caption_image, (k,), ties="best")[k] == pytest.approx(hi)
    assert spread >= 3  # the tie order matters in several of the cases

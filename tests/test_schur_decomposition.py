"""Schur decomposition against the direct block-matrix computation, SCE against the entropy of
normalized eigenvalues computed here, and removal leaving embeddings uncorrelated / orthogonal."""
from __future__ import annotations

import numpy as np
import pytest

from solvers.schur_decomposition import (matrix_entropy, project_out, prompt_direction, remove_text_component,
                                         schur_complement_entropy, schur_decomposition, text_to_image_map)


def _paired(seed=0, n=200, d=6):
    rng = np.random.default_rng(seed)
    texts = rng.normal(size=(n, d))
    images = texts @ rng.normal(size=(d, d)) * 0.5 + rng.normal(size=(n, d))
    return images, texts


def _unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_complement_equals_block_matrix_schur():
    images, texts = _paired()
    I, T = _unit(images), _unit(texts)
    joint = np.hstack([T, I])
    K = joint.T @ joint / len(I)  # [[C_TT, C_TI], [C_IT, C_II]]
    d = T.shape[1]
    A, B, D = K[:d, :d], K[:d, d:], K[d:, d:]
    expected = D - B.T @ np.linalg.inv(A) @ B
    out = schur_decomposition(images, texts)
    np.testing.assert_allclose(out["complement"], expected, atol=1e-9)
    np.testing.assert_allclose(out["image_covariance"], D, atol=1e-12)
    np.testing.assert_allclose(out["text_part"] + out["complement"], D, atol=1e-12)


def test_sce_is_entropy_of_normalized_eigenvalues():
    images, texts = _paired(1)
    S = schur_decomposition(images, texts)["complement"]
    lam = np.linalg.eigvalsh(S)
    lam = np.clip(lam, 0, None)
    p = lam / lam.sum()
    expected = -sum(v * np.log(v) for v in p if v > 0)
    assert schur_complement_entropy(images, texts) == pytest.approx(expected)
    assert matrix_entropy(np.eye(4)) == pytest.approx(np.log(4))
    gauss = schur_complement_entropy(images, texts, kernel="gaussian", sigma=1.0, rff_dim=100)
    assert 0 < gauss <= np.log(200) + 1e-9


def test_removal_leaves_images_uncorrelated_with_texts():
    images, texts = _paired(2)
    A = text_to_image_map(images, texts)
    residual = remove_text_component(_unit(images), texts, A)
    np.testing.assert_allclose(_unit(texts).T @ residual / len(texts), 0, atol=1e-10)


def test_projection_is_orthogonal_to_prompt_direction():
    images, texts = _paired(3)
    A = text_to_image_map(images, texts)
    d = prompt_direction(texts[0], A)
    removed = project_out(_unit(images), d)
    np.testing.assert_allclose(removed @ d, 0, atol=1e-12)
    isolated = project_out(_unit(images), d, isolate=True)
    np.testing.assert_allclose(removed + isolated, _unit(images), atol=1e-12)

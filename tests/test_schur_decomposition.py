"""Schur decomposition against the direct block-matrix computation, SCE against the entropy of
normalized eigenvalues computed here, and removal leaving embeddings uncorrelated / orthogonal."""
from __future__ import annotations

import numpy as np
import pytest

from solvers.schur_decomposition import (
    feature_map,
    matrix_entropy,
    official_sce,
    project_out,
    prompt_direction,
    remove_text_component,
    schur_complement_entropy,
    schur_decomposition,
    schur_eigenvalues,
    schur_scores,
    text_to_image_map,
)


def _paired(seed=0, n=200, d=6):
    rng = np.random.default_rng(seed)
    texts = rng.normal(size=(n, d))
    images = texts @ rng.normal(size=(d, d)) * 0.5 + rng.normal(size=(n, d))
    return images, texts


def _unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_complement_equals_block_matrix_schur():
    images, texts = _paired()
    Im, T = _unit(images), _unit(texts)
    joint = np.hstack([T, Im])
    K = joint.T @ joint / len(Im)  # [[C_TT, C_TI], [C_IT, C_II]]
    d = T.shape[1]
    A, B, D = K[:d, :d], K[:d, d:], K[d:, d:]
    expected = D - B.T @ np.linalg.inv(A) @ B
    out = schur_decomposition(images, texts, kernel="cosine")
    np.testing.assert_allclose(out["complement"], expected, atol=1e-9)
    np.testing.assert_allclose(out["image_covariance"], D, atol=1e-12)
    np.testing.assert_allclose(out["text_part"] + out["complement"], D, atol=1e-12)


def test_complement_entropy_is_entropy_of_normalized_eigenvalues():
    images, texts = _paired(1)
    S = schur_decomposition(images, texts, kernel="cosine")["complement"]
    lam = np.linalg.eigvalsh(S)
    lam = np.clip(lam, 0, None)
    p = lam / lam.sum()
    expected = -sum(v * np.log(v) for v in p if v > 0)
    scores = schur_scores(images, texts, kernel="cosine")
    assert scores["complement_entropy"] == pytest.approx(expected)
    assert scores["exp_complement_entropy"] == pytest.approx(np.exp(expected))
    assert matrix_entropy(np.eye(4)) == pytest.approx(np.log(4))


def test_official_sce_by_hand():
    """exp(-sum l log(l / sum l)) with l clamped at 1e-10, the weights l not normalized."""
    lam = np.array([0.5, 0.3, 0.2, 0.0, -1e-15])
    total = 1.0 + 2e-10
    expected = np.exp(-(0.5 * np.log(0.5 / total) + 0.3 * np.log(0.3 / total) + 0.2 * np.log(0.2 / total)
                        + 2 * 1e-10 * np.log(1e-10 / total)))
    assert official_sce(lam) == pytest.approx(expected, rel=1e-12)
    assert official_sce(2 * lam) != pytest.approx(official_sce(lam))  # scales with the trace


def test_defaults_are_the_papers_gaussian_kernel_on_raw_features():
    """sigma = 3.5, m = 2500 random frequencies (5000 features), rows not normalized: the feature
    inner products approximate exp(-||x - y||^2 / (2 * 3.5^2)) on the raw rows."""
    rng = np.random.default_rng(4)
    X = 3.0 * rng.normal(size=(20, 8))
    phi = feature_map(X)
    assert phi.shape == (20, 5000)
    exact = np.exp(-((X[:, None] - X[None]) ** 2).sum(-1) / (2 * 3.5 ** 2))
    np.testing.assert_allclose(phi @ phi.T, exact, atol=0.06)
    on_unit = feature_map(X, normalize=True)
    U = _unit(X)
    np.testing.assert_allclose(on_unit @ on_unit.T, np.exp(-((U[:, None] - U[None]) ** 2).sum(-1) / 24.5), atol=0.06)
    cosine = feature_map(X, kernel="cosine")
    np.testing.assert_allclose(cosine, U)


def test_eigenvalues_from_n_by_n_matrices_equal_the_feature_space_ones():
    rng = np.random.default_rng(5)
    labels = np.arange(30) % 3
    class_texts = 2 * rng.normal(size=(3, 6))
    texts = class_texts[labels]  # a class bank indexed by the labels, as fs schur pairs them
    images = class_texts[labels] + 2 * rng.normal(size=(30, 6))
    fast = schur_eigenvalues(images, texts, rff_dim=40)  # F = 80 features > n = 30 pairs
    phi_i, phi_t = feature_map(images, rff_dim=40), feature_map(texts, rff_dim=40)
    U, sv, _ = np.linalg.svd(phi_t, full_matrices=False)
    P = U[:, sv > 1e-10 * sv[0]] @ U[:, sv > 1e-10 * sv[0]].T  # projector onto the texts' span
    exact = {"image_covariance": phi_i.T @ phi_i / 30, "text_part": phi_i.T @ P @ phi_i / 30,
             "complement": phi_i.T @ (np.eye(30) - P) @ phi_i / 30}
    direct = schur_decomposition(images, texts, rff_dim=40)  # the official formula, eps = 1e-12
    for key in exact:
        np.testing.assert_allclose(fast[key], np.linalg.eigvalsh(exact[key]), atol=1e-10)
        np.testing.assert_allclose(fast[key], np.linalg.eigvalsh(direct[key]), atol=1e-5)
    scores = schur_scores(images, texts, rff_dim=40)
    assert scores["sce"] == pytest.approx(official_sce(np.linalg.eigvalsh(exact["complement"])), rel=1e-9)
    assert scores["text_part_sce"] == pytest.approx(official_sce(np.linalg.eigvalsh(exact["text_part"])), rel=1e-9)
    assert schur_complement_entropy(images, texts, rff_dim=40) == scores["sce"]


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

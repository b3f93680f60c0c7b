"""Schur-complement decomposition of image embeddings given paired text (Ospanov et al.,
"Dissecting CLIP: Decomposition with a Schur Complement-based Approach", 2024; official code
github.com/aziksh-ospanov/CLIP-DISSECTION).

With feature maps phi (the embedding itself for the cosine kernel, random Fourier features for
the Gaussian kernel) of n paired images I and texts T:
C_II = phi(I)^T phi(I) / n, C_TT = phi(T)^T phi(T) / n, C_TI = phi(T)^T phi(I) / n;
text-explained part C_TI^T C_TT^+ C_TI; Schur complement S = C_II - C_TI^T C_TT^+ C_TI.
SCE = matrix entropy of S (entropy of its normalized eigenvalues): the diversity of the images
that their texts do not explain. A* = C_TT^+ C_TI maps a text to its image component.
"""
from __future__ import annotations

import numpy as np

from solvers.normalize import l2_normalize
from solvers.errors import InputError


def feature_map(X: np.ndarray, kernel: str = "cosine", sigma: float = 1.0, rff_dim: int = 2000,
                seed: int = 0) -> np.ndarray:
    """phi(X): normalized rows (cosine kernel) or random Fourier features
    [cos(X W), sin(X W)] / sqrt(m), W ~ N(0, 1 / sigma^2), of normalized rows (Gaussian kernel)."""
    X = l2_normalize(np.asarray(X, dtype=np.float64))
    if kernel == "cosine":
        return X
    if kernel != "gaussian":
        raise InputError(f"kernel must be 'cosine' or 'gaussian', not {kernel!r}")
    if not float(sigma) > 0 or int(rff_dim) < 1:
        raise InputError(f"the Gaussian kernel needs sigma > 0 and rff_dim >= 1, got sigma={sigma}, rff_dim={rff_dim}")
    W = np.random.default_rng(seed).normal(scale=1.0 / sigma, size=(X.shape[1], rff_dim))
    XW = X @ W
    return np.hstack([np.cos(XW), np.sin(XW)]) / np.sqrt(rff_dim)


def _pair(images: np.ndarray, texts: np.ndarray) -> None:
    if np.shape(images)[0] != np.shape(texts)[0] or np.ndim(images) != 2 or np.ndim(texts) != 2:
        raise InputError(f"need paired (n, D) images and texts, got {np.shape(images)} and {np.shape(texts)}")


def schur_decomposition(images: np.ndarray, texts: np.ndarray, kernel: str = "cosine", sigma: float = 1.0,
                        rff_dim: int = 2000, seed: int = 0, eps: float = 1e-12) -> dict[str, np.ndarray]:
    """``image_covariance`` C_II, ``text_part`` C_TI^T (C_TT + eps I)^+ C_TI and ``complement`` S."""
    _pair(images, texts)
    phi_i = feature_map(images, kernel, sigma, rff_dim, seed)
    phi_t = feature_map(texts, kernel, sigma, rff_dim, seed)
    n = phi_i.shape[0]
    c_ii, c_tt, c_ti = phi_i.T @ phi_i / n, phi_t.T @ phi_t / n, phi_t.T @ phi_i / n
    text_part = c_ti.T @ np.linalg.pinv(c_tt + eps * np.eye(len(c_tt)), hermitian=True) @ c_ti
    return {"image_covariance": c_ii, "text_part": text_part, "complement": c_ii - text_part}


def matrix_entropy(matrix: np.ndarray) -> float:
    """-sum_k l_k log l_k over the eigenvalues of a symmetric PSD matrix, clipped at 0 and
    normalized to sum to one (0 log 0 = 0)."""
    values = np.clip(np.linalg.eigvalsh((matrix + matrix.T) / 2), 0.0, None)
    if values.sum() <= 0:
        return 0.0
    p = values / values.sum()
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def schur_complement_entropy(images: np.ndarray, texts: np.ndarray, **kwargs: object) -> float:
    """SCE: matrix entropy of the Schur complement (image diversity not explained by the texts)."""
    return schur_scores(images, texts, **kwargs)["sce"]


def schur_scores(images: np.ndarray, texts: np.ndarray, **kwargs: object) -> dict[str, float]:
    """What ``fs schur score`` reports: ``sce``, ``exp_sce`` and the matrix entropies of the image
    covariance and of its text-explained part, from one decomposition (``kwargs`` as
    ``schur_decomposition``)."""
    parts = schur_decomposition(images, texts, **kwargs)
    sce = matrix_entropy(parts["complement"])
    return {"sce": sce, "exp_sce": float(np.exp(sce)), "image_entropy": matrix_entropy(parts["image_covariance"]),
            "text_part_entropy": matrix_entropy(parts["text_part"])}


def remove_prompt(fit_images: np.ndarray, fit_texts: np.ndarray, X: np.ndarray, prompt: np.ndarray,
                  method: str = "schur", isolate: bool = False) -> np.ndarray:
    """Rows of ``X`` (L2-normalized first) with a prompt's component removed, the text->image map A*
    fitted on the paired (``fit_images``, ``fit_texts``): ``"schur"`` x - phi(t) A*, ``"project"``
    x - (x . d) d with d the prompt's image direction (or (x . d) d with ``isolate``)."""
    if method not in ("schur", "project"):
        raise InputError(f"method must be 'schur' or 'project', not {method!r}")
    if isolate and method != "project":
        raise InputError("isolate needs method='project'")
    A = text_to_image_map(fit_images, fit_texts)
    X = l2_normalize(np.asarray(X, dtype=np.float64))
    if method == "schur":
        return remove_text_component(X, prompt, A)
    return project_out(X, prompt_direction(prompt, A), isolate=isolate)


def text_to_image_map(images: np.ndarray, texts: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """A* = (C_TT + eps I)^+ C_TI (D_text, D_image), cosine kernel: the least-squares map from a
    normalized text embedding to the image component it explains."""
    _pair(images, texts)
    phi_i, phi_t = feature_map(images), feature_map(texts)
    n = phi_i.shape[0]
    c_tt, c_ti = phi_t.T @ phi_t / n, phi_t.T @ phi_i / n
    return np.linalg.pinv(c_tt + eps * np.eye(len(c_tt)), hermitian=True) @ c_ti


def remove_text_component(X: np.ndarray, texts: np.ndarray, A: np.ndarray) -> np.ndarray:
    """x - phi(t) A* for each row (the paper's corrected embedding); ``texts`` is (n, D) or one (D,) prompt."""
    t = feature_map(np.atleast_2d(texts))
    return np.asarray(X, dtype=np.float64) - t @ A


def prompt_direction(prompt: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Unit image-space direction d = phi(t_p) A* / ||phi(t_p) A*|| of a prompt."""
    d = (feature_map(np.atleast_2d(prompt)) @ A)[0]
    norm = np.linalg.norm(d)
    if norm == 0:
        raise InputError("the prompt explains no image component (zero direction)")
    return d / norm


def project_out(X: np.ndarray, direction: np.ndarray, isolate: bool = False) -> np.ndarray:
    """x - (x . d) d (orthogonal to d), or (x . d) d when ``isolate``."""
    X = np.asarray(X, dtype=np.float64)
    along = np.outer(X @ direction, direction)
    return along if isolate else X - along

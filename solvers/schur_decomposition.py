"""Schur-complement decomposition of image embeddings given paired text (Ospanov et al.,
"Dissecting CLIP: Decomposition with a Schur Complement-based Approach", 2024; official code
github.com/aziksh-ospanov/CLIP-DISSECTION).

With feature maps phi (the embedding itself for the cosine kernel, random Fourier features for
the Gaussian kernel) of n paired images I and texts T:
C_II = phi(I)^T phi(I) / n, C_TT = phi(T)^T phi(T) / n, C_TI = phi(T)^T phi(I) / n;
text-explained part C_TI^T C_TT^+ C_TI; Schur complement S = C_II - C_TI^T C_TT^+ C_TI.
SCE (as the official code reports it) = exp(-sum l log(l / sum l)) over S's eigenvalues l
clamped at 1e-10: the diversity of the images that their texts do not explain. Defaults are
the paper's: Gaussian kernel, sigma = 3.5, m = 2500, on the features as given (raw CLIP
outputs in the paper). A* = C_TT^+ C_TI (cosine kernel) maps a text to its image component.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from solvers._base.normalize import l2_normalize
from solvers.errors import InputError

#: The paper's defaults (the official README's example): a Gaussian kernel of bandwidth 3.5 on
#: the raw (unnormalized) CLIP features, approximated by m = 2500 random Fourier frequencies.
DEFAULT_KERNEL = "gaussian"
DEFAULT_SIGMA = 3.5
DEFAULT_RFF_DIM = 2500
#: The official code clamps eigenvalues at this value before its entropy.
EIGENVALUE_FLOOR = 1e-10


def feature_map(X: np.ndarray, kernel: str = DEFAULT_KERNEL, sigma: float = DEFAULT_SIGMA,
                rff_dim: int = DEFAULT_RFF_DIM, seed: int = 0, normalize: bool = False) -> np.ndarray:
    """phi(X): the L2-normalized rows (cosine kernel), or random Fourier features
    [cos(X W), sin(X W)] / sqrt(m), W ~ N(0, 1 / sigma^2) (D, m) drawn from ``seed`` (Gaussian
    kernel exp(-||x - y||^2 / (2 sigma^2))), of the rows as given (``normalize=False``, as the
    official code on raw encoder outputs) or L2-normalized first (``normalize=True``). The same
    seed gives images and texts the same frequencies W, as the official code shares them."""
    X = np.asarray(X, dtype=np.float64)
    if kernel == "cosine":
        return l2_normalize(X)
    if kernel != "gaussian":
        raise InputError(f"kernel must be 'cosine' or 'gaussian', not {kernel!r}")
    if not float(sigma) > 0 or int(rff_dim) < 1:
        raise InputError(f"the Gaussian kernel needs sigma > 0 and rff_dim >= 1, got sigma={sigma}, rff_dim={rff_dim}")
    if normalize:
        X = l2_normalize(X)
    W = np.random.default_rng(seed).normal(scale=1.0 / sigma, size=(X.shape[1], int(rff_dim)))
    XW = X @ W
    return np.hstack([np.cos(XW), np.sin(XW)]) / np.sqrt(rff_dim)


def _pair(images: np.ndarray, texts: np.ndarray) -> None:
    if np.shape(images)[0] != np.shape(texts)[0] or np.ndim(images) != 2 or np.ndim(texts) != 2:
        raise InputError(f"need paired (n, D) images and texts, got {np.shape(images)} and {np.shape(texts)}")


def schur_decomposition(images: np.ndarray, texts: np.ndarray, kernel: str = DEFAULT_KERNEL,
                        sigma: float = DEFAULT_SIGMA, rff_dim: int = DEFAULT_RFF_DIM, seed: int = 0,
                        eps: float = 1e-12, normalize: bool = False) -> dict[str, np.ndarray]:
    """``image_covariance`` C_II, ``text_part`` C_TI^T (C_TT + eps I)^+ C_TI and ``complement`` S,
    in feature space (F x F, F = 2m for the Gaussian kernel, D for the cosine kernel)."""
    _pair(images, texts)
    phi_i = feature_map(images, kernel, sigma, rff_dim, seed, normalize)
    phi_t = feature_map(texts, kernel, sigma, rff_dim, seed, normalize)
    n = phi_i.shape[0]
    c_ii, c_tt, c_ti = phi_i.T @ phi_i / n, phi_t.T @ phi_t / n, phi_t.T @ phi_i / n
    text_part = c_ti.T @ np.linalg.pinv(c_tt + eps * np.eye(len(c_tt)), hermitian=True) @ c_ti
    return {"image_covariance": c_ii, "text_part": text_part, "complement": c_ii - text_part}


def schur_eigenvalues(images: np.ndarray, texts: np.ndarray, kernel: str = DEFAULT_KERNEL,
                      sigma: float = DEFAULT_SIGMA, rff_dim: int = DEFAULT_RFF_DIM, seed: int = 0,
                      normalize: bool = False) -> dict[str, np.ndarray]:
    """Eigenvalues (all F of them, ascending) of ``schur_decomposition``'s three matrices.

    With fewer pairs n than features F they come from n x n matrices instead of F x F: with
    Phi the (n, F) feature rows, C_II = Phi_I^T Phi_I / n shares its nonzero eigenvalues with
    K = Phi_I Phi_I^T / n; the text part is Phi_I^T P Phi_I / n with P the projector onto the
    span of Phi_T's rows (the eps -> 0 limit of the formula), so it shares them with P K P, and
    the complement with (I - P) K (I - P). The other F - n eigenvalues are 0.
    """
    _pair(images, texts)
    phi_i = feature_map(images, kernel, sigma, rff_dim, seed, normalize)
    phi_t = feature_map(texts, kernel, sigma, rff_dim, seed, normalize)
    n, F = phi_i.shape
    if F <= n:
        parts = schur_decomposition(images, texts, kernel, sigma, rff_dim, seed, normalize=normalize)
        return {k: np.linalg.eigvalsh((v + v.T) / 2) for k, v in parts.items()}
    K = phi_i @ phi_i.T / n
    w, V = np.linalg.eigh(phi_t @ phi_t.T)
    keep = w > w.max() * n * np.finfo(np.float64).eps
    P = V[:, keep] @ V[:, keep].T
    Q = np.eye(n) - P
    zeros = np.zeros(F - n)
    out = {}
    for key, M in (("image_covariance", K), ("text_part", P @ K @ P), ("complement", Q @ K @ Q)):
        out[key] = np.sort(np.r_[np.linalg.eigvalsh((M + M.T) / 2), zeros])
    return out


def entropy_of_eigenvalues(values: np.ndarray) -> float:
    """-sum_k p_k log p_k with p the eigenvalues clipped at 0 and normalized to sum one (0 log 0 = 0)."""
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
    if values.sum() <= 0:
        return 0.0
    p = values / values.sum()
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def matrix_entropy(matrix: np.ndarray) -> float:
    """``entropy_of_eigenvalues`` of a symmetric PSD matrix."""
    return entropy_of_eigenvalues(np.linalg.eigvalsh((matrix + matrix.T) / 2))


def official_sce(values: np.ndarray) -> float:
    """SCE as the official code reports it (``schur_vendi_from_eigs``): the eigenvalues l clamped
    at 1e-10, then exp(-sum_k l_k log(l_k / sum_k l_k)). Unlike exp(entropy), the weights l_k
    are not normalized, so the value scales with the trace."""
    lam = np.maximum(np.asarray(values, dtype=np.float64), EIGENVALUE_FLOOR)
    return float(np.exp(-np.sum(lam * np.log(lam / lam.sum()))))


def schur_complement_entropy(images: np.ndarray, texts: np.ndarray, **kwargs: Any) -> float:
    """SCE as the official code reports it, of the Schur complement (``schur_scores``'s ``sce``)."""
    return schur_scores(images, texts, **kwargs)["sce"]


def schur_scores(images: np.ndarray, texts: np.ndarray, **kwargs: Any) -> dict[str, float]:
    """What ``fs schur score`` reports, from one eigendecomposition (``kwargs`` as
    ``schur_eigenvalues``; the defaults are the paper's): ``sce`` (the official SCE of the
    complement, the image diversity the texts do not explain) and ``text_part_sce`` (the same of
    the text-explained part); ``complement_entropy`` and its exponential ``exp_complement_entropy``
    (the entropy of the normalized eigenvalues, a trace-free variant), and the entropies of the
    image covariance and of the text part."""
    values = schur_eigenvalues(images, texts, **kwargs)
    entropy = entropy_of_eigenvalues(values["complement"])
    return {"sce": official_sce(values["complement"]), "text_part_sce": official_sce(values["text_part"]),
            "complement_entropy": entropy, "exp_complement_entropy": float(np.exp(entropy)),
            "image_entropy": entropy_of_eigenvalues(values["image_covariance"]),
            "text_part_entropy": entropy_of_eigenvalues(values["text_part"])}


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
    phi_i, phi_t = feature_map(images, "cosine"), feature_map(texts, "cosine")
    n = phi_i.shape[0]
    c_tt, c_ti = phi_t.T @ phi_t / n, phi_t.T @ phi_i / n
    return np.linalg.pinv(c_tt + eps * np.eye(len(c_tt)), hermitian=True) @ c_ti


def remove_text_component(X: np.ndarray, texts: np.ndarray, A: np.ndarray) -> np.ndarray:
    """x - phi(t) A* for each row (the paper's corrected embedding); ``texts`` is (n, D) or one (D,) prompt."""
    t = feature_map(np.atleast_2d(texts), "cosine")
    return np.asarray(X, dtype=np.float64) - t @ A


def prompt_direction(prompt: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Unit image-space direction d = phi(t_p) A* / ||phi(t_p) A*|| of a prompt."""
    d = (feature_map(np.atleast_2d(prompt), "cosine") @ A)[0]
    norm = np.linalg.norm(d)
    if norm == 0:
        raise InputError("the prompt explains no image component (zero direction)")
    return d / norm


def project_out(X: np.ndarray, direction: np.ndarray, isolate: bool = False) -> np.ndarray:
    """x - (x . d) d (orthogonal to d), or (x . d) d when ``isolate``."""
    X = np.asarray(X, dtype=np.float64)
    along = np.outer(X @ direction, direction)
    return along if isolate else X - along

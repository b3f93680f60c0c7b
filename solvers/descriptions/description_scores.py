"""Class scores from descriptor prompts (Menon & Vondrick, "Visual Classification via Description
from Large Language Models", ICLR 2023): a class's score is the mean cosine similarity between the
image and the prompts "{class}, which {descriptor}" of that class. Shared by the description solvers."""
from __future__ import annotations

import numpy as np

from solvers._base.checks import check_features
from solvers._base.normalize import l2_normalize
from solvers.errors import InputError


def check_prompts(prompt_weights: object, prompt_classes: object, n_classes: int | None,
                  descriptors: list[str] | None = None,
                  name: str = "prompt_weights") -> tuple[np.ndarray, np.ndarray, int]:
    """Validate (K, D) prompt embeddings and their (K,) class indices; every class needs a prompt.

    Returns (normalized prompt embeddings, class indices, C).
    """
    P = check_features(prompt_weights, name=name)
    if prompt_classes is None:
        raise InputError(f"{name} needs the class of each prompt (prompt_classes)")
    owners = np.asarray(prompt_classes)
    if owners.ndim != 1 or owners.shape[0] != P.shape[0] or not np.issubdtype(owners.dtype, np.integer):
        raise InputError(f"the class of each prompt must be {P.shape[0]} integers, got shape {owners.shape}")
    C = int(n_classes) if n_classes is not None else int(owners.max()) + 1
    if owners.min() < 0 or owners.max() >= C:
        raise InputError(f"prompt class indices must lie in [0, {C}), got {int(owners.min())}..{int(owners.max())}")
    empty = np.flatnonzero(np.bincount(owners, minlength=C) == 0)
    if empty.size:
        raise InputError(f"class(es) {', '.join(map(str, empty[:10]))} have no descriptor prompt; "
                         "every class needs at least one")
    if descriptors is not None and len(descriptors) != P.shape[0]:
        raise InputError(f"{len(descriptors)} descriptor strings for {P.shape[0]} prompts")
    return l2_normalize(P.astype(np.float64)), owners.astype(np.int64), C


def class_membership(owners: np.ndarray, n_classes: int, mask: np.ndarray | None = None) -> np.ndarray:
    """(K, C) 0/1 matrix: prompt k belongs to class owners[k] (and is kept by ``mask``)."""
    M = np.zeros((len(owners), n_classes))
    M[np.arange(len(owners)), owners] = 1.0
    if mask is not None:
        M[~np.asarray(mask, dtype=bool)] = 0.0
    return M


def prompt_similarities(X: np.ndarray, prompts_n: np.ndarray) -> np.ndarray:
    """(n, K) cosine similarities between image rows and normalized prompt embeddings."""
    return l2_normalize(np.asarray(X, dtype=np.float64)) @ prompts_n.T


def mean_class_scores(S: np.ndarray, owners: np.ndarray, n_classes: int,
                      mask: np.ndarray | None = None) -> np.ndarray:
    """(n, C) mean of the similarities ``S`` (n, K) over each class's (kept) prompts."""
    M = class_membership(owners, n_classes, mask)
    counts = M.sum(axis=0)
    if np.any(counts == 0):
        raise InputError("a class has no kept descriptor prompt")
    return (S @ M) / counts


def top_descriptors(S: np.ndarray, classes: np.ndarray, owners: np.ndarray, descriptors: list[str],
                    top: int, mask: np.ndarray | None = None) -> list[list[tuple[str, float]]]:
    """For each row, the ``top`` descriptors of class ``classes[i]`` with the highest similarity."""
    if top < 1:
        raise InputError(f"top must be >= 1, got {top}")
    keep = np.ones(len(owners), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    out = []
    for row, c in zip(S, classes):
        idx = np.flatnonzero((owners == c) & keep)
        best = idx[np.argsort(-row[idx], kind="stable")[:top]]
        out.append([(descriptors[k], float(row[k])) for k in best])
    return out

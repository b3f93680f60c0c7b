"""Follow-up Differential Descriptions, FuDD (Esfandiarpoor & Bach, "Follow-Up Differential
Descriptions: Language Models Resolve Ambiguities for Image Classification", ICLR 2024).

For each image, the k classes with the highest zero-shot scores are ambiguous. Each ambiguous
class c is then scored with the descriptions that set it apart from the other ambiguous classes
(supplied per class pair, encoded by `fs descriptors --kind differential`); where a pair has no
differential descriptions, c's plain descriptors stand in (or its class prompt without a bank).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from solvers._base.checks import check_features, check_text_weights
from solvers._base.normalize import l2_normalize
from solvers._base.solver import Solver
from solvers.descriptions.description_scores import (
    check_prompts,
    class_membership,
    prompt_similarities,
)
from solvers.errors import InputError


class DifferentialDescriptions(Solver):
    """FuDD (Esfandiarpoor & Bach, ICLR 2024): re-rank the zero-shot top-k with pair-wise descriptions.

    For image x with ambiguous set A (top ``top_k`` of z(x)) and c in A, the descriptions of c are
    the union over o in A \\ {c} of D(c|o) (differential prompts of c against o), plus c's plain
    descriptor prompts when some o has no D(c|o). score_c = mean cosine over them; logit = s * score_c.
    Classes outside A keep their zero-shot order below A: logit = s * (cos(x, T_c) - 2).
    """

    fit_input = "none"
    _data_params = ("text_weights", "pair_weights", "pair_classes", "pair_others", "prompt_weights",
                    "prompt_classes")

    def __init__(self, text_weights: np.ndarray | None = None, pair_weights: np.ndarray | None = None,
                 pair_classes: np.ndarray | None = None, pair_others: np.ndarray | None = None,
                 prompt_weights: np.ndarray | None = None, prompt_classes: np.ndarray | None = None,
                 top_k: int = 10, logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        self.text_weights = text_weights
        self.pair_weights = pair_weights
        self.pair_classes = pair_classes
        self.pair_others = pair_others
        self.prompt_weights = prompt_weights
        self.prompt_classes = prompt_classes
        self.top_k = top_k
        self.logit_scale = logit_scale
        self.temperature = temperature

    def _checked(self) -> dict[str, Any]:
        if self.text_weights is None:
            raise InputError("FuDD needs the class text weights for its zero-shot top-k "
                             "(encode them with fs text --classes)")
        T = l2_normalize(check_text_weights(self.text_weights).astype(np.float64))
        C = T.shape[0]
        D, pair_classes, _ = _check_pairs(self.pair_weights, self.pair_classes, self.pair_others, C)
        if D.shape[1] != T.shape[1]:
            raise InputError(f"pair_weights have {D.shape[1]} features but text_weights has {T.shape[1]}")
        if self.prompt_weights is None:
            P, owners = T, np.arange(C)
        else:
            P, owners, _ = check_prompts(self.prompt_weights, self.prompt_classes, C)
            if P.shape[1] != T.shape[1]:
                raise InputError(f"prompt_weights have {P.shape[1]} features but text_weights has {T.shape[1]}")
        if int(self.top_k) < 1:
            raise InputError(f"top_k must be >= 1, got {self.top_k}")
        others = np.asarray(self.pair_others, dtype=np.int64)
        has_pair = np.zeros((C, C), dtype=bool)
        has_pair[pair_classes, others] = True
        return {"T": T, "D": D, "owners": pair_classes, "others": others, "P": P, "plain_owners": owners,
                "has_pair": has_pair, "C": C}

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None,
            X_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> DifferentialDescriptions:
        """Validate the inputs (and X's dimension when given); nothing is learned."""
        parts = self._checked()
        if X is not None:
            check_features(X, n_features=parts["T"].shape[1])
        self._set_classes(parts["C"], parts["T"].shape[1])
        return self

    def ambiguous_classes(self, X: np.ndarray) -> np.ndarray:
        """(n, k) indices of the top-k zero-shot classes of each row, best first."""
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_)
        Z = prompt_similarities(X, l2_normalize(np.asarray(self.text_weights, dtype=np.float64)))
        k = min(int(self.top_k), Z.shape[1])
        return np.argsort(-Z, axis=1, kind="stable")[:, :k]

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """Re-ranked logits (n, C): description scores on the ambiguous set, zero-shot order below it."""
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_)
        p = self._checked()
        C = p["C"]
        Z = prompt_similarities(X, p["T"])
        top = self.ambiguous_classes(X)
        in_set = np.zeros(Z.shape, dtype=bool)
        np.put_along_axis(in_set, top, True, axis=1)
        # differential prompts of c against an ambiguous other class o
        active = in_set[:, p["others"]].astype(np.float64)
        M = class_membership(p["owners"], C)
        S_diff = prompt_similarities(X, p["D"])
        sums, counts = (S_diff * active) @ M, active @ M
        # plain descriptors where some other ambiguous class has no pair with c (or no other exists)
        lacks = ~p["has_pair"] & ~np.eye(C, dtype=bool)
        needs_plain = ((in_set.astype(np.float64) @ lacks.T.astype(np.float64)) > 0) | (counts == 0)
        M_plain = class_membership(p["plain_owners"], C)
        sums += needs_plain * (prompt_similarities(X, p["P"]) @ M_plain)
        counts += needs_plain * M_plain.sum(axis=0)
        score = sums / np.maximum(counts, 1)
        return self.logit_scale * np.where(in_set, score, Z - 2.0)


def _check_pairs(weights: object, owners: object, others: object, n_classes: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate differential prompts: embeddings, the class each describes and the class it is contrasted with."""
    D = check_features(weights, name="pair_weights")
    owners_arr = np.asarray(owners)
    others_arr = np.asarray(others)
    for name, arr in (("pair_classes", owners_arr), ("pair_others", others_arr)):
        if arr.ndim != 1 or arr.shape[0] != D.shape[0] or not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"{name} must be {D.shape[0]} integers, got shape {arr.shape}")
        if arr.min() < 0 or arr.max() >= n_classes:
            raise InputError(f"{name} must lie in [0, {n_classes})")
    if np.any(owners_arr == others_arr):
        raise InputError("a differential prompt contrasts a class with itself")
    return l2_normalize(D.astype(np.float64)), owners_arr.astype(np.int64), n_classes

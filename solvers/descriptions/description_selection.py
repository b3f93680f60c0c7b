"""Description selection, training-free part of "Does VLM Classification Benefit from LLM
Description Semantics?" (Ma et al., AAAI 2025).

Per class, keep the descriptions that best separate it from its local label neighbourhood on a
small labelled selection set, then classify by the mean similarity over the kept descriptions
(as Menon & Vondrick, ICLR 2023).
"""
from __future__ import annotations

import numpy as np

from solvers._base.checks import check_features, check_validation_pair
from solvers._base.normalize import l2_normalize
from solvers._base.solver import Solver
from solvers.descriptions.description_scores import (
    check_prompts,
    class_membership,
    mean_class_scores,
    prompt_similarities,
    top_descriptors,
)
from solvers.errors import InputError


class DescriptionSelection(Solver):
    """Description selection (Ma et al., AAAI 2025): per class, the ``n_select`` most discriminative
    descriptor prompts against its ``n_neighbors`` nearest classes, then Menon-style mean cosine.

    Neighbours N(c): the classes whose text embedding (``text_weights``, else the mean of the class's
    prompts) is most similar to c's. Discriminativeness of prompt p of class c on the selection set
    (X, y): mean_{y_i = c} cos(x_i, p) - mean_{y_i in N(c)} cos(x_i, p). ``n_select=None`` searches
    ``n_select_grid`` on the validation split (``default_n_select`` without one).
    """

    fit_input = "labels"
    _data_params = ("prompt_weights", "prompt_classes", "descriptors", "n_classes", "text_weights", "classes")
    _state_arrays = ("selected_", "prompt_scores_")
    _state_scalars = ("n_select_",)

    def __init__(self, prompt_weights: np.ndarray | None = None, prompt_classes: np.ndarray | None = None,
                 descriptors: list[str] | None = None, n_classes: int | None = None,
                 text_weights: np.ndarray | None = None, classes: list | np.ndarray | None = None,
                 n_neighbors: int = 5, n_select: int | None = None,
                 n_select_grid: tuple[int, ...] = (1, 2, 4, 8, 16), default_n_select: int = 4,
                 logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        self.prompt_weights = prompt_weights
        self.prompt_classes = prompt_classes
        self.descriptors = descriptors
        self.n_classes = n_classes
        self.text_weights = text_weights
        self.classes = classes
        self.n_neighbors = n_neighbors
        self.n_select = n_select
        self.n_select_grid = n_select_grid
        self.default_n_select = default_n_select
        self.logit_scale = logit_scale
        self.temperature = temperature

    def neighbours(self) -> np.ndarray:
        """(C, m) indices of each class's ``n_neighbors`` most similar other classes, nearest first."""
        P, owners, C = check_prompts(self.prompt_weights, self.prompt_classes, self.n_classes)
        if self.text_weights is not None:
            T = check_features(self.text_weights, name="text_weights", n_features=P.shape[1], other="prompt_weights")
            if T.shape[0] != C:
                raise InputError(f"text_weights has {T.shape[0]} classes but the prompts describe {C}")
        else:
            M = class_membership(owners, C)
            T = (M / M.sum(axis=0)).T @ P
        T = l2_normalize(np.asarray(T, dtype=np.float64))
        G = T @ T.T
        np.fill_diagonal(G, -np.inf)
        m = max(0, min(int(self.n_neighbors), C - 1))
        return np.argsort(-G, axis=1, kind="stable")[:, :m]

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> DescriptionSelection:
        """Score every prompt on (X, y), then choose how many to keep per class (searched on validation)."""
        P, owners, C = check_prompts(self.prompt_weights, self.prompt_classes, self.n_classes, self.descriptors)
        X = check_features(X, n_features=P.shape[1], other="prompt_weights")
        y = self._fit_labels(y, X.shape[0], C)  # labels among ``classes`` (default range(C), the bank's)
        S = prompt_similarities(X, P)
        Y = np.zeros((len(y), C))
        Y[np.arange(len(y)), y] = 1.0
        counts = Y.sum(axis=0)
        class_mean = (Y.T @ S) / np.maximum(counts, 1)[:, None]  # (C, K): mean cos of class rows to prompt k
        neighbours = self.neighbours()
        scores = np.zeros(len(owners))
        for c in range(C):
            mine = owners == c
            hood = neighbours[c][counts[neighbours[c]] > 0]
            own = class_mean[c, mine] if counts[c] > 0 else 0.0
            other = (counts[hood] @ class_mean[hood][:, mine]) / counts[hood].sum() if hood.size else 0.0
            scores[mine] = own - other
        self.prompt_scores_ = scores
        rank = np.empty(len(owners), dtype=np.int64)
        for c in range(C):
            idx = np.flatnonzero(owners == c)
            rank[idx[np.argsort(-scores[idx], kind="stable")]] = np.arange(idx.size)
        self._set_classes(C, P.shape[1])
        if self.n_select is not None:
            n = int(self.n_select)
        else:
            val = check_validation_pair(X_val, y_val, P.shape[1], self.classes_)
            n = int(self.default_n_select)
            if val is not None:
                S_val = prompt_similarities(val[0], P)
                accuracy = [np.mean(np.argmax(mean_class_scores(S_val, owners, C, rank < g), axis=1) == val[1])
                            for g in self.n_select_grid]
                n = int(self.n_select_grid[int(np.argmax(accuracy))])
        if n < 1:
            raise InputError(f"n_select must be >= 1, got {n}")
        self.n_select_ = n
        self.selected_ = rank < n
        return self

    def _similarities(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_, other="prompt_weights")
        P, owners, _ = check_prompts(self.prompt_weights, self.prompt_classes, len(self.classes_))
        return prompt_similarities(X, P), owners

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """logit_scale * the mean cosine over each class's selected prompts, (n, C)."""
        S, owners = self._similarities(X)
        return self.logit_scale * mean_class_scores(S, owners, len(self.classes_), np.asarray(self.selected_, bool))

    def explain(self, X: np.ndarray, top: int = 3) -> list[list[tuple[str, float]]]:
        """For each row, the ``top`` selected descriptors of the predicted class and their cosine."""
        if self.descriptors is None:
            raise InputError("this DescriptionSelection has no descriptor strings to explain with")
        S, owners = self._similarities(X)
        keep = np.asarray(self.selected_, bool)
        pred = np.argmax(mean_class_scores(S, owners, len(self.classes_), keep), axis=1)
        return top_descriptors(S, pred, owners, list(self.descriptors), top, keep)

"""Classification by description (Menon & Vondrick, "Visual Classification via Description from
Large Language Models", ICLR 2023; github.com/sachit-menon/classify_by_descriptions).

Each class c has descriptor prompts "{c}, which {descriptor}" (encoded by `fs descriptors`); the
class score is the mean cosine similarity between the image and its class's prompts, and the
descriptors with the highest similarity explain a prediction.
"""
from __future__ import annotations

import numpy as np

from solvers._base.checks import check_features
from solvers._base.solver import Solver
from solvers.descriptions.description_scores import (
    check_prompts,
    mean_class_scores,
    prompt_similarities,
    top_descriptors,
)
from solvers.errors import InputError


class DescriptorClassifier(Solver):
    """Classification by description (Menon & Vondrick, ICLR 2023): logits = s * mean_d cos(x, e(c, d)).

    ``prompt_weights`` (K, D) embed the prompts, ``prompt_classes`` (K,) give each prompt's class,
    ``descriptors`` (K strings) name them for ``explain``. ``fit`` learns nothing (zero-shot).
    """

    fit_input = "none"
    _data_params = ("prompt_weights", "prompt_classes", "descriptors", "n_classes")

    def __init__(self, prompt_weights: np.ndarray | None = None, prompt_classes: np.ndarray | None = None,
                 descriptors: list[str] | None = None, n_classes: int | None = None,
                 logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        self.prompt_weights = prompt_weights
        self.prompt_classes = prompt_classes
        self.descriptors = descriptors
        self.n_classes = n_classes
        self.logit_scale = logit_scale
        self.temperature = temperature

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None,
            X_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> DescriptorClassifier:
        """Validate the prompts (and X's dimension when given); nothing is learned."""
        P, _, C = check_prompts(self.prompt_weights, self.prompt_classes, self.n_classes, self.descriptors)
        if X is not None:
            check_features(X, n_features=P.shape[1], other="prompt_weights")
        self._set_classes(C, P.shape[1])
        return self

    def _similarities(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_, other="prompt_weights")
        P, _, _ = check_prompts(self.prompt_weights, self.prompt_classes, len(self.classes_))
        return prompt_similarities(X, P)

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """logit_scale * the mean cosine over each class's descriptor prompts, (n, C)."""
        S = self._similarities(X)
        return self.logit_scale * mean_class_scores(S, np.asarray(self.prompt_classes), len(self.classes_))

    def explain(self, X: np.ndarray, top: int = 3) -> list[list[tuple[str, float]]]:
        """For each row, the ``top`` descriptors of the predicted class with their cosine similarity."""
        if self.descriptors is None:
            raise InputError("this DescriptorClassifier has no descriptor strings to explain with")
        S = self._similarities(X)
        owners = np.asarray(self.prompt_classes)
        pred = np.argmax(mean_class_scores(S, owners, len(self.classes_)), axis=1)
        return top_descriptors(S, pred, owners, list(self.descriptors), top)

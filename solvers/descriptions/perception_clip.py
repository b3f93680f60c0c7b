"""PerceptionCLIP (An et al., "More Context, Less Distraction: Zero-shot Visual Classification by
Inferring and Conditioning on Contextual Attributes", ICLR 2024; github.com/umd-huang-lab/perceptionCLIP).

First infer the contextual attributes z of the image (background, orientation, ...), then classify
conditioned on them: p(y|x) = sum_z p(y|x, z) p(z|x). Prompts for every (class, context) and for
every context alone are encoded by `fs descriptors --kind contexts`.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from solvers._base.checks import check_features, check_validation_pair
from solvers._base.normalize import l2_normalize
from solvers._base.softmax import log_softmax
from solvers._base.solver import Solver
from solvers.errors import InputError

INFER_MODES = ("with_class", "without_class", "uniform")


class PerceptionCLIP(Solver):
    """PerceptionCLIP (An et al., ICLR 2024): logits = log sum_z p(y|x,z) p(z|x).

    f(y, z; x) = s * cos(x, e(y, z)) with ``prompt_weights`` e (C, Z, D). p(y|x,z) = softmax_y f.
    p(z|x) by ``infer``: "with_class" (default) softmax_z of logsumexp_y f / tau; "without_class"
    softmax_z of s * cos(x, e(z)) / tau with the class-free ``context_weights`` (Z, D); "uniform" 1/Z
    (the tau -> infinity limit). tau = ``context_temperature`` (1.0); None searches
    ``temperature_grid`` on the validation split. ``temperature`` is the ``predict_proba``
    temperature of every solver (1: softmax(log p(y|x)) = p(y|x)), set by temperature scaling.
    """

    fit_input = "none"
    _data_params = ("prompt_weights", "context_weights", "contexts")
    _state_scalars = ("context_temperature_",)

    def __init__(self, prompt_weights: np.ndarray | None = None, context_weights: np.ndarray | None = None,
                 contexts: list[str] | None = None, infer: str = "with_class",
                 context_temperature: float | None = 1.0,
                 temperature_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
                 logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        self.prompt_weights = prompt_weights
        self.context_weights = context_weights
        self.contexts = contexts
        self.infer = infer
        self.context_temperature = context_temperature
        self.temperature_grid = temperature_grid
        self.logit_scale = logit_scale
        self.temperature = temperature

    def _prompts(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self.prompt_weights is None:
            raise InputError("prompt_weights (C, Z, D) are required")
        E = np.asarray(self.prompt_weights, dtype=np.float64)
        if E.ndim != 3 or 0 in E.shape or not np.isfinite(E).all():
            raise InputError(f"prompt_weights must be a finite (C, Z, D) array, got shape {E.shape}")
        if self.infer not in INFER_MODES:
            raise InputError(f"infer must be one of {', '.join(INFER_MODES)}, not {self.infer!r}")
        Ez = None
        if self.infer == "without_class":
            if self.context_weights is None:
                raise InputError('infer="without_class" needs context_weights (Z, D)')
            Ez = check_features(self.context_weights, name="context_weights", n_features=E.shape[2],
                                other="prompt_weights")
            if Ez.shape[0] != E.shape[1]:
                raise InputError(f"context_weights has {Ez.shape[0]} contexts but prompt_weights has {E.shape[1]}")
            Ez = l2_normalize(Ez.astype(np.float64))
        if self.contexts is not None and len(self.contexts) != E.shape[1]:
            raise InputError(f"{len(self.contexts)} context names for {E.shape[1]} contexts")
        return E / np.maximum(np.linalg.norm(E, axis=2, keepdims=True), 1e-12), Ez

    def _parts(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """f(y, z; x) (n, C, Z) and the class-free context logits (n, Z) or None."""
        E, Ez = self._prompts()
        Xn = l2_normalize(np.asarray(X, dtype=np.float64))
        F = self.logit_scale * np.einsum("nd,czd->ncz", Xn, E)
        return F, (self.logit_scale * Xn @ Ez.T if Ez is not None else None)

    def _log_context(self, F: np.ndarray, G: np.ndarray | None, tau: float) -> np.ndarray:
        """log p(z|x), (n, Z)."""
        if self.infer == "uniform":
            return np.full((F.shape[0], F.shape[2]), -np.log(F.shape[2]))
        if self.infer == "without_class":
            assert G is not None  # computed for this inference mode
            return log_softmax(G, tau)
        return log_softmax(logsumexp(F / tau, axis=1))

    def _log_posterior(self, F: np.ndarray, G: np.ndarray | None, tau: float) -> np.ndarray:
        log_y_given_z = F - logsumexp(F, axis=1, keepdims=True)
        return logsumexp(log_y_given_z + self._log_context(F, G, tau)[:, None, :], axis=2)

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None,
            X_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> PerceptionCLIP:
        """Validate the prompts; with ``context_temperature=None`` pick tau on the validation split."""
        E, _ = self._prompts()
        C, _, D = E.shape
        if X is not None:
            check_features(X, n_features=D, other="prompt_weights")
        tau = self.context_temperature
        if tau is None:
            tau = 1.0
            val = check_validation_pair(X_val, y_val, D, C)
            if val is not None and self.infer != "uniform":
                F, G = self._parts(val[0])
                accuracy = [np.mean(np.argmax(self._log_posterior(F, G, t), axis=1) == val[1])
                            for t in self.temperature_grid]
                tau = float(self.temperature_grid[int(np.argmax(accuracy))])
        if float(tau) <= 0:
            raise InputError(f"context_temperature must be > 0, got {tau}")
        self.context_temperature_ = float(tau)
        self._set_classes(C, D)
        return self

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """log p(y|x), (n, C); softmax of it is p(y|x) itself."""
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_, other="prompt_weights")
        F, G = self._parts(X)
        return self._log_posterior(F, G, self.context_temperature_)

    def context_probabilities(self, X: np.ndarray) -> np.ndarray:
        """p(z|x), (n, Z): the inferred contextual attributes of each row."""
        self._check_fitted()
        X = check_features(X, n_features=self.n_features_in_, other="prompt_weights")
        F, G = self._parts(X)
        return np.exp(self._log_context(F, G, self.context_temperature_))

    def explain(self, X: np.ndarray, top: int = 3) -> list[list[tuple[str, float]]]:
        """For each row, the ``top`` most probable contexts z with p(z|x)."""
        if top < 1:
            raise InputError(f"top must be >= 1, got {top}")
        probs = self.context_probabilities(X)
        names = list(self.contexts) if self.contexts is not None else [str(z) for z in range(probs.shape[1])]
        order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
        return [[(names[z], float(row[z])) for z in idx] for row, idx in zip(probs, order)]

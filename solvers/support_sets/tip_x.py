"""SuS-X with TIP-X inference (Udandarao et al., "SuS-X: Training-Free Name-Only Transfer of
Vision-Language Models", ICCV 2023; official code github.com/vishaal27/SuS-X, ``tipx.py``).

The support set is retrieved from an image pool by the class texts (SuS-LC: the k pool rows
nearest to each class's text embedding, labelled with that class); no target label is used.

Official bugs not reproduced: the official KL loop runs over n // 100 batches of 100 rows, so
the last n mod 100 rows keep KL = 0; here every row's KL is computed. The official test-time
min-max scaling reuses the last validation affinities' range; here the ranges are frozen at fit
time (the batch-independent form of the same thing).
"""
from __future__ import annotations

import numpy as np

from solvers._base.checks import (
    check_features,
    check_labels,
    check_text_weights,
    check_validation_pair,
)
from solvers._base.normalize import l2_normalize
from solvers._base.progress import progress
from solvers._base.solver import Solver
from solvers.errors import InputError
from solvers.few_shot.tip_adapter import linear_grid
from solvers.support_sets.kl_affinity import MinMaxScale, class_log_distribution, kl_matrix
from solvers.zero_shot.zero_shot import zero_shot_logits

#: Most logits (gammas x validation rows x classes) held at once during the search: 2^22 float64 = 32 MiB.
SEARCH_BLOCK_ELEMENTS = 1 << 22


class TipX(Solver):
    """TIP-X on a retrieved support set (Udandarao et al., ICCV 2023).

    Keys F (support rows, normalized), one-hot values L, text weights T. For a test row x:
    cache = exp(-beta (1 - x F^T)) L; kl = -scale(KL(p(x) || p(F))) L with p = softmax(x T^T /
    ``kl_tau``) and ``scale`` the min-max map onto the affinity range; logits = logit_scale x T^T
    + alpha cache + gamma kl. alpha, beta, gamma are searched on (X_val, y_val) over the official
    grids (alpha 0.1..50 in 20 steps, beta 1..50 in 200, gamma 0.1..30 in 50), else the defaults
    (1, 1, 1). The support set is given as arrays (``workflows.inputs.arrays.tipx_support`` retrieves
    it from a store's pool).
    """

    fit_input = "none"
    _data_params: tuple[str, ...] = ("text_weights", "support_features", "support_labels")
    batch_size = 2048
    _state_arrays: tuple[str, ...] = ("keys_", "labels_", "key_log_dist_")
    _state_scalars: tuple[str, ...] = ("alpha_", "beta_", "gamma_", "delta_", "scale_", "val_accuracy_")

    def __init__(self, text_weights: np.ndarray | None = None, support_features: np.ndarray | None = None,
                 support_labels: np.ndarray | None = None,
                 alpha: float | None = None, beta: float | None = None, gamma: float | None = None,
                 default_alpha: float = 1.0, default_beta: float = 1.0, default_gamma: float = 1.0,
                 search_scale: tuple[float, float, float] = (50.0, 50.0, 30.0),
                 search_steps: tuple[int, int, int] = (20, 200, 50), kl_tau: float = 0.5,
                 logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        self.text_weights = text_weights
        self.support_features = support_features
        self.support_labels = support_labels
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.default_alpha = default_alpha
        self.default_beta = default_beta
        self.default_gamma = default_gamma
        self.search_scale = search_scale
        self.search_steps = search_steps
        self.kl_tau = kl_tau
        self.logit_scale = logit_scale
        self.temperature = temperature

    # -------------------------------------------------------------- fitting
    def _support(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        T = check_text_weights(self.text_weights)
        F = check_features(self.support_features, name="support_features", n_features=T.shape[1])
        y = check_labels(self.support_labels, F.shape[0], T.shape[0], name="support_labels")
        missing = np.setdiff1d(np.arange(T.shape[0]), y)
        if missing.size:
            raise InputError(f"{missing.size} class(es) have no support row: class {', '.join(map(str, missing[:10]))}")
        return T, F, y

    def _deltas(self) -> list[float]:
        """Modality mixes to search (TIP-X has image keys only)."""
        return [0.0]

    def _affinity(self, Xn: np.ndarray, delta: float) -> np.ndarray:
        """Cosine affinity of normalized rows to the keys, (n, N)."""
        return Xn @ self.keys_.T.astype(Xn.dtype)

    def _prepare_keys(self, order: np.ndarray) -> None:
        """Hook for subclasses that keep more per-key arrays (sorted by label with ``order``)."""

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> TipX:
        """Build the cache from the support set; search alpha/beta/gamma on (X_val, y_val) only."""
        T, F, labels = self._support()
        order = np.argsort(labels, kind="stable")
        self.keys_ = l2_normalize(F)[order]
        self.labels_ = labels[order]
        self._prepare_keys(order)
        self.key_log_dist_ = class_log_distribution(self.keys_, T, self.kl_tau)
        self._set_classes(T.shape[0], T.shape[1])
        val = check_validation_pair(X_val, y_val, T.shape[1], T.shape[0])
        self.val_accuracy_: float | None = None
        fixed = (self.alpha, self.beta, self.gamma)
        defaults = (self.default_alpha, self.default_beta, self.default_gamma)
        self.alpha_, self.beta_, self.gamma_ = (float(d if v is None else v) for v, d in zip(fixed, defaults))
        self.delta_ = self._default_delta()
        reference = self.keys_ if val is None else l2_normalize(val[0])
        if val is not None:
            self._search(l2_normalize(val[0]), val[1])
        self.scale_ = self._scale_for(reference, self.delta_)
        return self

    def _default_delta(self) -> float:
        """The modality mix used without validation (TIP-X: image keys only)."""
        return 0.0

    def _scale_for(self, Xn: np.ndarray, delta: float) -> list[float]:
        kl = kl_matrix(class_log_distribution(Xn, self._required_text_weights(), self.kl_tau), self.key_log_dist_)
        s = MinMaxScale.fit(kl, self._affinity(Xn, delta))
        return [s.kl_min, s.kl_max, s.target_min, s.target_max]

    def _class_sums(self, values: np.ndarray) -> np.ndarray:
        starts = np.searchsorted(self.labels_, np.arange(self.classes_.size))
        return np.add.reduceat(values, starts, axis=1)

    def _kl_logits(self, Xn: np.ndarray, scale: list[float]) -> np.ndarray:
        kl = kl_matrix(class_log_distribution(Xn, self._required_text_weights(), self.kl_tau), self.key_log_dist_)
        return self._class_sums(-MinMaxScale(*scale)(kl))

    def _search(self, Xv: np.ndarray, yv: np.ndarray) -> None:
        """Grid search (alpha, beta, delta outer; gamma vectorized), first best wins."""
        a_scale, b_scale, g_scale = self.search_scale
        a_steps, b_steps, g_steps = self.search_steps
        alphas = [self.alpha] if self.alpha is not None else linear_grid(a_scale, a_steps, 0.1)
        betas = [self.beta] if self.beta is not None else linear_grid(b_scale, b_steps, 1.0)
        gammas = np.array([self.gamma] if self.gamma is not None else linear_grid(g_scale, g_steps, 0.1))
        zs = zero_shot_logits(Xv, self._required_text_weights(), self.logit_scale)
        best = (-1.0, self.alpha_, self.beta_, self.gamma_, self.delta_)
        # gammas are scored in blocks of at most SEARCH_BLOCK_ELEMENTS logits (never gamma x n_val x C at once)
        block = max(1, SEARCH_BLOCK_ELEMENTS // max(1, zs.size))
        for delta in self._deltas():
            affinity = self._affinity(Xv, delta)
            kl = self._kl_logits(Xv, self._scale_for(Xv, delta))
            for alpha in progress(alphas, f"{type(self).__name__} search"):
                for beta in betas:
                    base = zs + alpha * self._class_sums(np.exp(-beta * (1 - affinity)))
                    hits = np.empty(len(gammas))
                    for lo in range(0, len(gammas), block):
                        logits = base[None] + gammas[lo:lo + block, None, None] * kl[None]
                        hits[lo:lo + block] = (np.argmax(logits, axis=2) == yv).mean(axis=1)
                    g = int(np.argmax(hits))
                    if hits[g] > best[0]:
                        best = (float(hits[g]), float(alpha), float(beta), float(gammas[g]), float(delta))
        self.val_accuracy_, self.alpha_, self.beta_, self.gamma_, self.delta_ = best

    # -------------------------------------------------------------- inference
    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """TIP-X logits (n, C), in row batches."""
        self._check_fitted()
        Xn = l2_normalize(check_features(X, n_features=self.n_features_in_))
        out = np.empty((Xn.shape[0], self.classes_.size), dtype=np.float64)
        for lo in range(0, Xn.shape[0], self.batch_size):
            batch = Xn[lo:lo + self.batch_size]
            cache = self._class_sums(np.exp(-self.beta_ * (1 - self._affinity(batch, self.delta_))))
            out[lo:lo + len(batch)] = (zero_shot_logits(batch, self._required_text_weights(), self.logit_scale)
                                       + self.alpha_ * cache + self.gamma_ * self._kl_logits(batch, self.scale_))
        return out

"""CapS-Adapter (Wang et al., "CapS-Adapter: Caption-based MultiModal Adapter in Zero-Shot
Classification", 2024; official code github.com/WLuLi/CapS-Adapter, ``madapter.py``).

A caption-based support set: pool rows whose caption embeddings are most similar to
class-conditioned captions (user-supplied strings per class, encoded into a grouped text bank).
The cache holds both the support images' features and their captions' text features; the
multimodal affinity mixes them: (1 - delta) x F_img^T + delta x F_cap^T.

Official bugs not reproduced: the official ``compute_image_text_distributions`` overwrites the
class projection x T^T with a softmax over the feature dimensions of x / tau, so its KL term
compares feature vectors; here p = softmax(x_n T_n^T / tau) over the classes, as TIP-X. Its KL
loop (batches of 10) leaves the last n mod 10 rows at KL = 0, and its min-max scaling is per
batch of 8192 rows; here every row is computed and the ranges are frozen at fit time. The
official support set is generated images; here it is retrieved pool rows.
"""
from __future__ import annotations

import numpy as np

from solvers._base.checks import check_features
from solvers._base.normalize import l2_normalize
from solvers.errors import InputError
from solvers.support_sets.tip_x import TipX

DELTAS = tuple(i / 10 for i in range(11))


def caption_support_positions(pool_captions: np.ndarray, class_captions: np.ndarray,
                              class_of_caption: np.ndarray, n_classes: int, shots: int) -> np.ndarray:
    """(C, shots) pool positions whose caption embeddings are most cosine-similar to the
    normalized mean of each class's class-conditioned caption embeddings (best first)."""
    P = l2_normalize(np.asarray(pool_captions, dtype=np.float32))
    Q = l2_normalize(np.asarray(class_captions, dtype=np.float32))
    missing = np.setdiff1d(np.arange(n_classes), class_of_caption)
    if missing.size:
        raise InputError(f"{missing.size} class(es) have no class-conditioned caption: class "
                         f"{', '.join(map(str, missing[:10]))}")
    if shots > len(P):
        raise InputError(f"the pool has {len(P)} captioned rows, fewer than shots={shots}")
    centroids = np.zeros((n_classes, P.shape[1]), np.float32)
    np.add.at(centroids, class_of_caption, Q)
    centroids = l2_normalize(centroids)
    out = np.empty((n_classes, shots), np.int64)
    for c in range(n_classes):
        sims = P @ centroids[c]
        top = np.argpartition(-sims, shots - 1)[:shots]
        out[c] = top[np.lexsort((top, -sims[top]))]
    return out


class CapSAdapter(TipX):
    """CapS-Adapter (Wang et al., 2024): TIP-X's three terms with a multimodal cache.

    affinity(x) = (1 - delta) x F_img^T + delta x F_cap^T; cache = exp(-beta (1 - affinity)) L;
    kl = -scale(KL(p(x) || p(F_img))) L with scale onto the affinity's range; logits =
    logit_scale x T^T + alpha cache + gamma kl. Searched on validation as the official code:
    alpha 0.1..50 (20 steps), beta 1..50 (200), gamma 0.1..30 (50), delta {0, 0.1, .., 1}.
    Without validation: alpha = beta = gamma = 1, delta = ``default_delta`` (0.5).
    The support set comes as arrays (``workflows.inputs.arrays.caps_support`` builds it from a
    store's pool, its caption bank and a bank of class-conditioned captions).
    """

    _state_arrays = (*TipX._state_arrays, "caption_keys_")
    _data_params = (*TipX._data_params, "support_caption_features")

    def __init__(self, text_weights: np.ndarray | None = None, support_features: np.ndarray | None = None,
                 support_labels: np.ndarray | None = None, support_caption_features: np.ndarray | None = None,
                 alpha: float | None = None, beta: float | None = None,
                 gamma: float | None = None, delta: float | None = None, default_alpha: float = 1.0,
                 default_beta: float = 1.0, default_gamma: float = 1.0, default_delta: float = 0.5,
                 search_scale: tuple[float, float, float] = (50.0, 50.0, 30.0),
                 search_steps: tuple[int, int, int] = (20, 200, 50), deltas: tuple[float, ...] = DELTAS,
                 kl_tau: float = 0.5, logit_scale: float = 100.0, temperature: float = 1.0) -> None:
        super().__init__(text_weights=text_weights, support_features=support_features,
                         support_labels=support_labels, alpha=alpha, beta=beta,
                         gamma=gamma, default_alpha=default_alpha, default_beta=default_beta,
                         default_gamma=default_gamma, search_scale=search_scale, search_steps=search_steps,
                         kl_tau=kl_tau, logit_scale=logit_scale, temperature=temperature)
        self.support_caption_features = support_caption_features
        self.delta = delta
        self.default_delta = default_delta
        self.deltas = deltas

    def _prepare_keys(self, order: np.ndarray) -> None:
        F = check_features(self.support_caption_features, name="support_caption_features",
                           n_features=self.keys_.shape[1], other="support_features")
        if F.shape[0] != len(order):
            raise InputError(f"support_caption_features has {F.shape[0]} rows but support_features has {len(order)}")
        self.caption_keys_ = l2_normalize(F)[order]

    def _deltas(self) -> list[float]:
        return [float(self.delta)] if self.delta is not None else [float(d) for d in self.deltas]

    def _default_delta(self) -> float:
        return float(self.default_delta if self.delta is None else self.delta)

    def _affinity(self, Xn: np.ndarray, delta: float) -> np.ndarray:
        """(1 - delta) x F_img^T + delta x F_cap^T."""
        image = Xn @ self.keys_.T.astype(Xn.dtype)
        caption = Xn @ self.caption_keys_.T.astype(Xn.dtype)
        return (1 - delta) * image + delta * caption

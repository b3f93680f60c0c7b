"""Image-level zero-shot and few-shot anomaly detection on CLIP features (the task of WinCLIP,
Jeong et al., CVPR 2023, and Bayes-PFL): a compositional prompt ensemble and an optional memory of
normal images.

* Zero-shot: the embeddings of the "normal" prompts (state phrases x templates, e.g. "a photo of
  a flawless bottle.") are L2-normalized and averaged into one normal text prototype t_n, the
  "anomalous" ones ("a photo of a damaged bottle.") into t_a (both re-normalized); the score is
  softmax(logit_scale * [x t_n, x t_a])[anomalous], x the L2-normalized image feature, with
  WinCLIP's logit_scale = 1 / 0.07 by default (its temperature 0.07, as anomalib's WinCLIP; not
  CLIP's trained 100). The scale does not change the zero-shot ranking (AUROC), but it sets how
  close the zero-shot score sits to 0 or 1, hence its weight against the memory score below.
* Few-shot: with K normal reference images, the memory score is
  (1 - max_j cos(x, m_j)) / 2 (half the cosine distance to the nearest normal image, in [0, 1]).
* Both: (1 - memory_weight) * zero-shot + memory_weight * memory (WinCLIP+ averages the two:
  ``memory_weight=0.5``).

Differences from WinCLIP: image level only (no window / patch features: the store holds one
embedding per image), so the score is the image-level part of WinCLIP's; the memory compares
global image embeddings rather than patch tokens.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from solvers._base.checks import check_features
from solvers._base.normalize import l2_normalize
from solvers._base.softmax import softmax
from solvers.errors import InputError


def text_prototype(prompt_embeddings: np.ndarray) -> np.ndarray:
    """Mean of the L2-normalized prompt embeddings, L2-normalized (D,)."""
    E = check_features(prompt_embeddings, name="prompt embeddings").astype(np.float64)
    return l2_normalize(l2_normalize(E).mean(axis=0, keepdims=True))[0]


#: WinCLIP's zero-shot logit scale: 1 / temperature, temperature 0.07 (the paper and anomalib).
WINCLIP_LOGIT_SCALE = 1.0 / 0.07


class PromptAnomalyDetector:
    """Anomaly scores from a normal / anomalous prompt ensemble, plus an optional memory of
    normal image features (``fit``). Higher score = more anomalous.

    ``logit_scale`` multiplies the cosines before the two-way softmax (default WinCLIP's 1 / 0.07);
    ``memory_weight`` w blends (1 - w) * zero-shot + w * memory (WinCLIP+: 0.5)."""

    def __init__(self, normal_prompts: np.ndarray, anomalous_prompts: np.ndarray,
                 logit_scale: float = WINCLIP_LOGIT_SCALE, memory_weight: float = 0.5) -> None:
        self.normal_prompts = normal_prompts
        self.anomalous_prompts = anomalous_prompts
        self.logit_scale = logit_scale
        self.memory_weight = memory_weight

    def fit(self, normal_features: np.ndarray | None = None) -> PromptAnomalyDetector:
        """Build the text prototypes; keep ``normal_features`` (K, D) as the memory when given."""
        if not (np.isfinite(self.logit_scale) and self.logit_scale > 0):
            raise InputError(f"logit_scale must be a positive number, got {self.logit_scale}")
        if not 0.0 <= float(self.memory_weight) <= 1.0:
            raise InputError(f"memory_weight must lie in [0, 1], got {self.memory_weight}")
        t_n, t_a = text_prototype(self.normal_prompts), text_prototype(self.anomalous_prompts)
        if t_n.shape != t_a.shape:
            raise InputError(f"normal prompts have {t_n.size} features but anomalous prompts have {t_a.size}")
        self.prototypes_ = np.stack([t_n, t_a])
        self.memory_ = None
        if normal_features is not None:
            self.memory_ = l2_normalize(check_features(normal_features, name="normal_features",
                                                       n_features=t_n.size, other="the prompts").astype(np.float64))
        return self

    def _check(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "prototypes_"):
            raise InputError("fit the detector first")
        return l2_normalize(check_features(X, n_features=self.prototypes_.shape[1], other="the prompts")
                            .astype(np.float64))

    def zero_shot_scores(self, X: np.ndarray) -> np.ndarray:
        """P(anomalous) from the two prototypes, (n,)."""
        return softmax(self.logit_scale * self._check(X) @ self.prototypes_.T)[:, 1]

    def memory_scores(self, X: np.ndarray) -> np.ndarray:
        """(1 - max cosine to the normal memory) / 2, (n,)."""
        if self.memory_ is None:
            raise InputError("no normal memory: fit with normal_features")
        return (1.0 - (self._check(X) @ self.memory_.T).max(axis=1)) / 2.0

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """The anomaly score: zero-shot alone, or blended with the memory score when fitted with one."""
        zero_shot = self.zero_shot_scores(X)
        if self.memory_ is None:
            return zero_shot
        w = float(self.memory_weight)
        return (1.0 - w) * zero_shot + w * self.memory_scores(X)


def anomaly_metrics(is_anomalous: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Image-level AUROC and AUPR (average precision) with the anomalous images as positives and a
    higher score meaning more anomalous (WinCLIP's convention), from ``solvers.metrics``."""
    from solvers.metrics.ood import aupr_in, auroc

    y = np.asarray(is_anomalous).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if y.all() or not y.any():
        raise InputError("AUROC and AUPR need both normal and anomalous images; "
                         f"these {y.size} are all {'anomalous' if y.all() else 'normal'}")
    # the metrics' positives are their first argument, ranked by decreasing score
    return {"auroc": auroc(scores[y], scores[~y]), "aupr": aupr_in(scores[y], scores[~y]),
            "n_normal": int((~y).sum()), "n_anomalous": int(y.sum())}

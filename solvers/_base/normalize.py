"""L2 row normalization: CLIP compares embeddings by cosine, so every solver works on unit rows."""
from __future__ import annotations

import numpy as np


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Return ``X`` with each row scaled to unit L2 norm (zero rows stay zero), same dtype."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return X / norms

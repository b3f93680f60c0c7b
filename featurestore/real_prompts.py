"""REAL-Prompt text banks (Parashar et al., "The Neglected Tails of Vision-Language Models",
CVPR 2024): each class name is replaced in the prompts by its most frequent synonym in the
pre-training captions; optionally the original-name prompts are ensembled in."""
from __future__ import annotations

from typing import Any

import numpy as np

from featurestore.textbanks import class_prompt_embeddings

REAL_PROMPT_KIND = "real-prompt"


def real_prompt_bank(encoder: Any, classes: list[str], names: list[str], templates: list[str],
                     ensemble_original: bool = False) -> dict[str, Any]:
    """Arguments for ``FeatureStore.put_text_bank``: weights = normalized mean of the prompt
    embeddings of ``names`` (and of ``classes`` too with ``ensemble_original``) per class."""
    weights, per_template = class_prompt_embeddings(encoder, names, templates)
    strings = [t.format(n) for n in names for t in templates]
    used = list(templates)
    if ensemble_original:
        _, original = class_prompt_embeddings(encoder, classes, templates)
        per_template = np.concatenate([per_template, original], axis=1)
        strings = [t.format(n) for n, c in zip(names, classes) for t in templates] + \
                  [t.format(c) for c in classes for t in templates]
        used = [f"REAL:{t}" for t in templates] + [f"original:{t}" for t in templates]
        weights = per_template.mean(axis=1)
        weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    return {"weights": weights.astype(np.float32), "strings": strings, "kind": REAL_PROMPT_KIND,
            "classes": classes, "names": names, "templates": used, "per_template": per_template.astype(np.float32)}


def find_real_bank(store: Any, encoder: str, bank: str | None) -> str:
    """``bank`` checked to be a REAL-Prompt bank, or the only REAL-Prompt bank of ``encoder``."""
    from featurestore.errors import NotFoundError

    if bank is not None:
        if store.text_bank_kind(encoder, bank) != REAL_PROMPT_KIND:
            raise NotFoundError(f"text bank {bank!r} is not a REAL-Prompt bank; make one with fs real prompts")
        return bank
    found = [b for b in store.text_banks(encoder) if store.text_bank_kind(encoder, b) == REAL_PROMPT_KIND]
    if len(found) != 1:
        raise NotFoundError(f"{'no' if not found else len(found)} REAL-Prompt banks for encoder {encoder!r}"
                            f"{': ' + ', '.join(found) if found else ''}; run fs real prompts or give --input real_bank=NAME")
    return found[0]

"""REAL-Prompt text banks (Parashar et al., "The Neglected Tails of Vision-Language Models",
CVPR 2024): each class name is replaced in the prompts by its most frequent synonym in the
pre-training captions (the official RELAXED rule, ``real_name``); optionally the original-name
prompts are ensembled in."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from featurestore.corpus.frequency import words
from featurestore.errors import SourceError
from featurestore.text.banks import class_prompt_embeddings

REAL_PROMPT_KIND = "real-prompt"
NAME_STRATEGIES = ("relaxed", "strict")


def real_name(class_name: str, synonyms: Sequence[str], counts: Sequence[int], strategy: str = "relaxed") -> str:
    """The name REAL-Prompt uses for a class, as the official ``find_most_common_name``.

    Walk the synonyms from most to least mentioned (list order on ties), keeping a running count
    that starts at the class name's own count. An alternate mentioned more often than the running
    count replaces the name, except with ``strategy="relaxed"`` (the official default) when its
    words are a strict subset of the class name's words ("Honda" never replaces "Honda Accord";
    the same words in another order, "2012 Honda Accord", may). Either way the running count
    becomes the alternate's, so once a subset alternate is skipped, a less mentioned one cannot
    replace the name: the class name is kept. ``strategy="strict"`` takes the most mentioned.
    """
    if strategy not in NAME_STRATEGIES:
        raise SourceError(f"REAL name strategy must be one of {NAME_STRATEGIES}, got {strategy!r}")
    own = set(words(class_name))
    order = sorted(range(len(synonyms)), key=lambda j: -int(counts[j]))
    own_counts = [int(counts[j]) for j in range(len(synonyms)) if words(synonyms[j]) == words(class_name)]
    chosen, running = class_name, (own_counts[0] if own_counts else 0)
    for j in order:
        if running < int(counts[j]):
            alternate = set(words(synonyms[j]))
            if strategy == "strict" or alternate == own or not alternate <= own:
                chosen = synonyms[j]
            running = int(counts[j])
    return chosen


def real_names(classes: Sequence[str], synonyms: Sequence[Sequence[str]], counts: Sequence[Sequence[int]],
               strategy: str = "relaxed") -> list[str]:
    """``real_name`` of every class (``synonyms[c]`` and their caption ``counts[c]``)."""
    return [real_name(c, s, n, strategy) for c, s, n in zip(classes, synonyms, counts)]


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
                            f"{': ' + ', '.join(found) if found else ''}; "
                            "run fs real prompts or give --input real_bank=NAME")
    return found[0]

"""Text banks: class names x prompt templates (zero-shot weights) and arbitrary text lists.

A class bank stores every (class, template) embedding as ``per_template`` (C, T, D) and the
zero-shot weights as the L2-normalized mean over templates (C, D), as CLIP's prompt
ensembling does. A list bank stores the embeddings of strings read from a file (captions,
descriptors, synonyms); a JSON object ``{name: [strings]}`` keeps each string's group.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.errors import SourceError

#: The class bank of a dataset's own templates, ``<first split>/dataset`` (``fs extract --dataset``).
DATASET_BANK = "dataset"


def class_prompt_embeddings(encoder: Any, classes: list[str], templates: list[str],
                            batch_size: int = 256, quiet: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return (weights (C, D), per_template (C, T, D)) for ``template.format(class)`` prompts."""
    if not classes:
        raise SourceError("no class names to encode")
    prompts = [template.format(name) for name in classes for template in templates]
    emb = encoder.encode_texts(prompts, batch_size=batch_size, quiet=quiet).reshape(len(classes), len(templates), -1)
    weights = emb.mean(axis=1)
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    return weights.astype(np.float32), emb.astype(np.float32)


def read_text_file(path: str | os.PathLike) -> tuple[list[str], list[str] | None]:
    """Strings from a text file, and their group names when the file groups them.

    ``.txt``: one string per line (blank lines skipped). ``.json``: a list of strings, or an
    object mapping a group (e.g. a class name) to a list of strings. ``.csv``/``.tsv``: the
    ``text`` column (else the first), and the ``group`` or ``class`` column when present.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"text file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path} is not valid JSON ({exc})") from None
        if isinstance(data, list) and all(isinstance(s, str) for s in data):
            return data, None
        if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
            strings = [str(s) for values in data.values() for s in values]
            groups = [str(k) for k, values in data.items() for _ in values]
            return strings, groups
        raise SourceError(f"{path} must hold a list of strings or an object of lists of strings")
    if suffix in (".csv", ".tsv"):
        import csv

        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
        if not rows:
            raise SourceError(f"{path} has no rows")
        columns = list(rows[0])
        text_col = "text" if "text" in columns else columns[0]
        group_col = next((c for c in ("group", "class") if c in columns), None)
        strings = [r[text_col] for r in rows]
        return strings, ([r[group_col] for r in rows] if group_col else None)
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line], None


def find_class_bank(store: Any, encoder: str, classes: list[str] | None) -> str | None:
    """Name of a class bank of ``encoder`` whose classes are ``classes`` (CLIP's ImageNet
    templates preferred), or None. Used when a command is given no ``--bank``. Reads each bank's
    kind and class names only, never its weights."""
    if not classes:
        return None
    matches = [bank for bank in store.text_banks(encoder)
               if store.text_bank_kind(encoder, bank) == "classes"
               and list(store.text_bank_field(encoder, bank, "classes") or []) == list(classes)]
    matches.sort(key=lambda bank: (not bank.endswith("/imagenet"), bank))
    return matches[0] if matches else None

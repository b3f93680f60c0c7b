"""Descriptor prompts: user-supplied class descriptors turned into the strings a text encoder embeds.

Menon & Vondrick ("Visual Classification via Description from Large Language Models", ICLR 2023)
ask a language model for descriptors of each class and embed "{class}, which {descriptor}". FuDD
(Esfandiarpoor & Bach, "Follow-Up Differential Descriptions", ICLR 2024) asks for descriptions that
tell two classes apart. No language model runs here: the user supplies the descriptors as JSON,

- class descriptors: ``{"cat": ["has pointed ears", ...], "dog": [...]}``;
- differential descriptors: ``{"cat|dog": {"cat": ["has slit pupils"], "dog": ["has a long snout"]}}``
  (the inner object names the two classes; the outer key is only a label).

Every class named must be one of the store's classes and every list must be non-empty; the class
descriptor file must describe every class. Prompts are indexed by the class list's order.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.errors import SourceError

DEFAULT_TEMPLATE = "{class}, which {descriptor}"


@dataclass
class PromptSet:
    """Prompt strings to embed, the bank ``kind`` and the per-prompt extras to store beside them."""

    kind: str
    strings: list[str]
    extras: dict[str, Any] = field(default_factory=dict)


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in ``path`` (a clear error when the file is missing, invalid or not an object)."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"descriptor file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not data:
        raise SourceError(f"{path} must hold a non-empty JSON object")
    return data


def non_empty_strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise SourceError(f"{where} must be a list of strings")
    strings = [s.strip() for s in value if s.strip()]
    if not strings:
        raise SourceError(f"{where} is an empty list; give at least one descriptor")
    return strings


def _check_known(names: list[str], classes: list[str], path: str | os.PathLike) -> None:
    unknown = [n for n in names if n not in classes]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise SourceError(f"{path} names unknown class(es) {shown}; the store's classes are: "
                          f"{', '.join(classes[:10])}{' ...' if len(classes) > 10 else ''}")


def format_prompt(template: str, class_name: str, descriptor: str) -> str:
    """``template`` with ``{class}`` and ``{descriptor}`` filled in."""
    return template.replace("{class}", class_name).replace("{descriptor}", descriptor)


def _check_template(template: str) -> None:
    if "{descriptor}" not in template:
        raise SourceError(f"prompt template {template!r} has no {{descriptor}} placeholder")


def read_class_descriptors(path: str | os.PathLike, classes: list[str]) -> dict[str, list[str]]:
    """``{class: [descriptors]}`` from a JSON file, checked against ``classes`` (all described)."""
    data = read_json_object(path)
    _check_known(list(data), classes, path)
    missing = [c for c in classes if c not in data]
    if missing:
        raise SourceError(f"{path} has no descriptors for class(es) {', '.join(map(repr, missing[:5]))}"
                          f"{' ...' if len(missing) > 5 else ''}; every class needs at least one")
    return {c: non_empty_strings(data[c], f"descriptors of class {c!r} in {path}") for c in classes}


def class_descriptor_prompts(descriptors: dict[str, list[str]], classes: list[str],
                             template: str = DEFAULT_TEMPLATE) -> PromptSet:
    """Prompts ``template`` for every (class, descriptor), class by class in ``classes`` order."""
    _check_template(template)
    strings, owners, raw = [], [], []
    for index, name in enumerate(classes):
        for descriptor in descriptors[name]:
            strings.append(format_prompt(template, name, descriptor))
            owners.append(index)
            raw.append(descriptor)
    return PromptSet("descriptors", strings, {
        "classes": list(classes), "groups": [classes[i] for i in owners], "descriptors": raw,
        "prompt_classes": np.asarray(owners, dtype=np.int64)})


def read_differential_descriptors(path: str | os.PathLike,
                                  classes: list[str]) -> list[tuple[str, str, list[str]]]:
    """``(class, other, [descriptors of class that set it apart from other])`` from a pair file."""
    data = read_json_object(path)
    out: list[tuple[str, str, list[str]]] = []
    seen: set[frozenset[str]] = set()
    for label, pair in data.items():
        if not isinstance(pair, dict) or len(pair) != 2:
            raise SourceError(f"entry {label!r} in {path} must be an object naming exactly two classes, "
                              'e.g. {"cat": [...], "dog": [...]}')
        names = list(pair)
        _check_known(names, classes, path)
        if frozenset(names) in seen:
            raise SourceError(f"{path} describes the pair {names[0]!r}/{names[1]!r} twice")
        seen.add(frozenset(names))
        for name, other in (names, names[::-1]):
            what = f"descriptors of {name!r} in entry {label!r} of {path}"
            out.append((name, other, non_empty_strings(pair[name], what)))
    return out


def differential_prompts(pairs: list[tuple[str, str, list[str]]], classes: list[str],
                         template: str = DEFAULT_TEMPLATE) -> PromptSet:
    """Prompts for every differential descriptor, with the class it describes and the class it is
    contrasted with (indices into ``classes``)."""
    _check_template(template)
    index = {c: i for i, c in enumerate(classes)}
    strings, owners, others, raw = [], [], [], []
    for name, other, descriptors in pairs:
        for descriptor in descriptors:
            strings.append(format_prompt(template, name, descriptor))
            owners.append(index[name])
            others.append(index[other])
            raw.append(descriptor)
    return PromptSet("differential", strings, {
        "classes": list(classes), "groups": [classes[i] for i in owners], "descriptors": raw,
        "prompt_classes": np.asarray(owners, dtype=np.int64),
        "prompt_others": np.asarray(others, dtype=np.int64)})

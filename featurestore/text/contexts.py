"""Contextual-attribute prompts for PerceptionCLIP (An et al., "More Context, Less Distraction:
Zero-shot Visual Classification by Inferring and Conditioning on Contextual Attributes", ICLR 2024).

The user lists attribute values as JSON, ``{"background": ["on grass", "in water"], "lighting":
["in daylight", "at night"]}``. Every combination z of one value per attribute is a context; the
prompt for (class y, context z) is ``"a photo of a {class}, on grass, at night"``, and the
class-free prompt for z (used to infer z without y) puts ``object`` in place of the class.
"""
from __future__ import annotations

import itertools
import os

from featurestore.errors import SourceError
from featurestore.text.descriptor_prompts import (
    PromptSet,
    non_empty_strings,
    read_json_object,
)

DEFAULT_CLASS_TEMPLATE = "a photo of a {class}"
CLASS_FREE_NAME = "object"


def read_attributes(path: str | os.PathLike) -> dict[str, list[str]]:
    """``{attribute: [value descriptions]}`` from a JSON file (non-empty lists of strings)."""
    data = read_json_object(path)
    return {str(name): non_empty_strings(values, f"values of attribute {name!r} in {path}")
            for name, values in data.items()}


def context_prompts(attributes: dict[str, list[str]], classes: list[str],
                    class_template: str = DEFAULT_CLASS_TEMPLATE) -> tuple[PromptSet, list[str]]:
    """Prompts for every (class, context), class-major (C * Z strings), and the Z class-free prompts.

    The PromptSet's extras hold ``classes``, ``groups`` (class of each prompt) and ``contexts``
    (the Z context descriptions, values joined by ", ").
    """
    if "{class}" not in class_template:
        raise SourceError(f"class template {class_template!r} has no {{class}} placeholder")
    if not classes:
        raise SourceError("no class names to build context prompts for")
    contexts = [", ".join(values) for values in itertools.product(*attributes.values())]
    strings = [f"{class_template.replace('{class}', name)}, {context}" for name in classes for context in contexts]
    class_free = [f"{class_template.replace('{class}', CLASS_FREE_NAME)}, {context}" for context in contexts]
    groups = [name for name in classes for _ in contexts]
    prompt_set = PromptSet("contexts", strings, {
        "classes": list(classes), "groups": groups, "contexts": contexts,
        "attributes": list(attributes)})
    return prompt_set, class_free

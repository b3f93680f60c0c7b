"""Text for the text encoder: prompt templates, class and text banks, synonyms, class heads,
and the prompt kinds of each method.

The names below are imported from their modules on first use (``featurestore.lazy_exports``):
reading a class bank does not import the REAL corpus readers, tarfile or the descriptor parsers."""
from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore.lazy_exports import lazy_exports

if TYPE_CHECKING:  # the same names, for type checkers (tests/test_import_paths.py checks both agree)
    from featurestore.text.anomaly_prompts import compose_prompts, read_states
    from featurestore.text.banks import class_prompt_embeddings, find_class_bank, read_text_file
    from featurestore.text.class_heads import read_class_file, read_head
    from featurestore.text.contexts import context_prompts, read_attributes
    from featurestore.text.descriptor_prompts import (
        PromptSet,
        class_descriptor_prompts,
        differential_prompts,
        read_class_descriptors,
        read_differential_descriptors,
    )
    from featurestore.text.real_prompts import find_real_bank, real_name, real_names, real_prompt_bank
    from featurestore.text.synonyms import read_synonyms
    from featurestore.text.templates import get_templates

_EXPORTS = {
    **dict.fromkeys(("compose_prompts", "read_states"), "anomaly_prompts"),
    **dict.fromkeys(("class_prompt_embeddings", "find_class_bank", "read_text_file"), "banks"),
    **dict.fromkeys(("read_class_file", "read_head"), "class_heads"),
    **dict.fromkeys(("context_prompts", "read_attributes"), "contexts"),
    **dict.fromkeys(("PromptSet", "class_descriptor_prompts", "differential_prompts", "read_class_descriptors",
                     "read_differential_descriptors"), "descriptor_prompts"),
    **dict.fromkeys(("find_real_bank", "real_name", "real_names", "real_prompt_bank"), "real_prompts"),
    "read_synonyms": "synonyms",
    "get_templates": "templates",
}
__all__ = [
    "PromptSet", "class_descriptor_prompts", "class_prompt_embeddings", "compose_prompts", "context_prompts",
    "differential_prompts", "find_class_bank", "find_real_bank", "get_templates", "read_attributes",
    "read_class_descriptors", "read_class_file", "read_differential_descriptors", "read_head", "read_states",
    "read_synonyms", "read_text_file", "real_name", "real_names", "real_prompt_bank"
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

"""Text for the text encoder: prompt templates, class and text banks, synonyms, class heads,
and the prompt kinds of each method."""
from __future__ import annotations

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

__all__ = [
    "PromptSet", "class_descriptor_prompts", "class_prompt_embeddings", "compose_prompts", "context_prompts",
    "differential_prompts", "find_class_bank", "find_real_bank", "get_templates", "read_attributes",
    "read_class_descriptors", "read_class_file", "read_differential_descriptors", "read_head", "read_states",
    "read_synonyms", "read_text_file", "real_name", "real_names", "real_prompt_bank"
]

"""Text for the text encoder: prompt templates, class and text banks, synonyms, class heads, and the prompt kinds of each method."""
from __future__ import annotations

from featurestore.text.anomaly_prompts import read_states, compose_prompts
from featurestore.text.banks import class_prompt_embeddings, read_text_file, find_class_bank
from featurestore.text.class_heads import read_head, read_class_file
from featurestore.text.contexts import read_attributes, context_prompts
from featurestore.text.descriptor_prompts import PromptSet, read_json_object, non_empty_strings, format_prompt, read_class_descriptors, class_descriptor_prompts, read_differential_descriptors, differential_prompts
from featurestore.text.real_prompts import real_name, real_names, real_prompt_bank, find_real_bank
from featurestore.text.synonyms import read_synonyms
from featurestore.text.templates import get_templates

__all__ = ["PromptSet", "class_descriptor_prompts", "class_prompt_embeddings", "compose_prompts", "context_prompts", "differential_prompts", "find_class_bank", "find_real_bank", "format_prompt", "get_templates", "non_empty_strings", "read_attributes", "read_class_descriptors", "read_class_file", "read_differential_descriptors", "read_head", "read_json_object", "read_states", "read_synonyms", "read_text_file", "real_name", "real_names", "real_prompt_bank"]

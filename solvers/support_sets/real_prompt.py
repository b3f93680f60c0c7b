"""REAL-Prompt (Parashar et al., "The Neglected Tails of Vision-Language Models", CVPR 2024;
official code github.com/shubhamprshr27/NeglectedTailsVLM): zero-shot classification with each
class name replaced by its most frequent synonym in the pre-training captions, chosen by the
official RELAXED rule (``featurestore.text.real_prompts.real_name``: an alternate whose words are a
strict subset of the class name's never replaces it). The prompts are encoded by
``fs real prompts`` into a REAL-Prompt text bank, whose weights this solver takes."""
from __future__ import annotations

from solvers.zero_shot.zero_shot import ZeroShot


class RealPrompt(ZeroShot):
    """Zero-shot logits logit_scale x_n T_n^T with T the REAL-Prompt bank's weights
    (Parashar et al., CVPR 2024).

    ``workflows.inputs.arrays.real_prompt_weights`` reads the weights from a store."""

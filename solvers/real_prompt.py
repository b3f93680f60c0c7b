"""REAL-Prompt (Parashar et al., "The Neglected Tails of Vision-Language Models", CVPR 2024;
official code github.com/shubhamprshr27/NeglectedTailsVLM): zero-shot classification with each
class name replaced by its most frequent synonym in the pre-training captions. The prompts are
encoded by ``fs real prompts`` into a REAL-Prompt text bank; this solver reads it."""
from __future__ import annotations

from typing import Any

from solvers.zeroshot import ZeroShot


class RealPrompt(ZeroShot):
    """Zero-shot logits logit_scale x_n T_n^T with T the REAL-Prompt bank's weights
    (Parashar et al., CVPR 2024). ``real_bank`` names the bank (default: the encoder's only one)."""

    def __init__(self, text_weights=None, real_bank: str | None = None, logit_scale: float = 100.0,
                 temperature: float = 1.0) -> None:
        super().__init__(text_weights=text_weights, logit_scale=logit_scale, temperature=temperature)
        self.real_bank = real_bank

    @classmethod
    def store_inputs(cls, store: Any, encoder: str, params: dict[str, Any]) -> dict[str, Any]:
        """The REAL-Prompt bank's weights replace the class bank's."""
        from featurestore.real_prompts import find_real_bank

        bank = find_real_bank(store, encoder, params.get("real_bank"))
        return {"text_weights": store.text(encoder, bank), "real_bank": bank}

"""open_clip text towers run on the tokens up to the end-of-text token, not the full context.

A CLIP text transformer with a causal attention mask that pools the end-of-text token (``argmax``
or ``eos`` pooling) computes that token's output from the tokens before it only: the padding
after it changes nothing but the cost. :func:`text_forward` cuts a token batch to the longest real
sequence in it (the last pooled position + 1) and runs the tower on that prefix, slicing the
positional embedding and the causal mask to the same length: one short query costs a few of the
77 positions instead of all of them. Models where the cut is not exact (no causal mask, another
pooling, a CoCa class token, a padding mask) keep open_clip's full-context ``encode_text``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

EXACT_POOLING = ("argmax", "eos")


def text_forward(net: Any) -> Callable[[Any], Any]:
    """``net.encode_text``, cut to the batch's real length where that gives the same embedding."""
    if not cuts_exactly(net):
        return net.encode_text

    def forward(tokens: Any) -> Any:
        n = pooled_length(tokens, net.text_pool_type, getattr(net, "text_eos_id", None))
        if n >= tokens.shape[1]:
            return net.encode_text(tokens)
        return _encode_prefix(net, tokens[:, :n])

    return forward


def cuts_exactly(net: Any) -> bool:
    """Whether ``net`` is an open_clip CLIP whose text tower gives the same pooled output on a
    prefix that holds every pooled token: a causal mask, EOT pooling, no class token."""
    import torch

    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask", "text_pool_type")
    if not all(hasattr(net, name) for name in needed) or net.attn_mask is None:
        return False
    if net.text_pool_type not in EXACT_POOLING or getattr(net, "cls_emb", None) is not None:
        return False
    if net.text_pool_type == "eos" and getattr(net, "text_eos_id", None) is None:
        return False
    mask = net.attn_mask
    n = net.positional_embedding.shape[0]
    if mask.shape != (n, n):
        return False
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=mask.device), diagonal=1)
    return bool(torch.isinf(mask[upper]).all() and (mask[~upper] == 0).all())


def pooled_length(tokens: Any, pool_type: str, eos_id: int | None = None) -> int:
    """The shortest prefix length that holds the token each row pools (as open_clip picks it)."""
    idx = tokens.argmax(dim=-1) if pool_type == "argmax" else (tokens == eos_id).int().argmax(dim=-1)
    return int(idx.max()) + 1 if len(tokens) else tokens.shape[1]


def _encode_prefix(net: Any, tokens: Any) -> Any:
    """open_clip's ``CLIP.encode_text`` on ``n`` positions: the positional embedding and the
    causal mask sliced to ``n``."""
    import torch
    from open_clip.transformer import text_global_pool

    n = tokens.shape[1]
    cast_dtype = net.transformer.get_cast_dtype()
    x = net.token_embedding(tokens).to(cast_dtype)
    x = x + net.positional_embedding[:n].to(cast_dtype)
    x = net.transformer(x, attn_mask=net.attn_mask[:n, :n])
    x = net.ln_final(x)
    x = text_global_pool(x, tokens, net.text_pool_type, eos_token_id=getattr(net, "text_eos_id", None))
    if net.text_projection is not None:
        x = net.text_projection(x) if isinstance(net.text_projection, torch.nn.Linear) else x @ net.text_projection
    return x


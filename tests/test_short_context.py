"""The text tower cut to the real token length gives open_clip's full-context embedding."""
from __future__ import annotations

import open_clip
import pytest
import torch

from featurestore.encoders import short_context

TEXTS = ["a photo of a cat", "x", "an airplane flying over a very long runway next to the sea at dawn, seen from above"]


def _full_and_cut(net, texts):
    tokens = open_clip.get_tokenizer("ViT-B-32")(texts)
    with torch.inference_mode():
        full = net.encode_text(tokens)
        cut = short_context.text_forward(net)(tokens)
    return tokens, full, cut


def test_tiny_model_cut_equals_full_context(tiny_encoder):
    net = tiny_encoder.model
    assert short_context.cuts_exactly(net)
    assert tiny_encoder.text_forward is not net.encode_text  # the loader uses the cut forward
    for texts in (TEXTS[:1], TEXTS[1:2], TEXTS):
        tokens, full, cut = _full_and_cut(net, texts)
        assert short_context.pooled_length(tokens, "argmax") < tokens.shape[1]
        torch.testing.assert_close(cut, full, atol=1e-5, rtol=0)


def test_vit_b32_random_weights_cut_equals_full_context():
    torch.manual_seed(0)
    net = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    assert short_context.cuts_exactly(net)
    for texts in (TEXTS[:1], TEXTS):
        _, full, cut = _full_and_cut(net, texts)
        assert (full - cut).abs().max().item() < 1e-5


def test_pooled_length_is_the_last_eot_position():
    tokens = torch.tensor([[5, 9, 3, 0, 0], [5, 2, 7, 9, 0]])  # argmax: positions 1 and 3
    assert short_context.pooled_length(tokens, "argmax") == 4
    assert short_context.pooled_length(tokens, "eos", eos_id=3) == 3  # row 2 has no eos: position 0


@pytest.mark.parametrize("change", ["no_mask", "last_pool"])
def test_inexact_models_keep_the_full_context(tiny_encoder, change, monkeypatch):
    net = tiny_encoder.model
    if change == "no_mask":
        monkeypatch.setattr(net, "attn_mask", None)
    else:
        monkeypatch.setattr(net, "text_pool_type", "last")
    assert not short_context.cuts_exactly(net)
    assert short_context.text_forward(net) == net.encode_text

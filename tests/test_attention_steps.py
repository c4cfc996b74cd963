"""Attention derived step by step (cutellm/views/attention_steps.py) against the model's own attention."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
import torch
from conftest import SMALL_MODEL, seeded_model

from cutellm import ConfigError
from cutellm.model import evaluating
from cutellm.tokenizer import build_tokenizer
from cutellm.views.attention_steps import derive_attention

TEXT = "the cat sat on the mat and the dog ran"
DESIGNS = {"gpt-2": {}, "rope": dict(positions="rope"), "not causal": dict(causal=False)}


def model_and_tokenizer(**design):
    tokenizer = build_tokenizer("word", TEXT, 50)
    return seeded_model(replace(SMALL_MODEL, **design)), tokenizer


def what_the_block_computes(model, ids, layer):
    """The model's own numbers in `layer`: the attention weights (trace) and, caught on their way through the block,
    the heads' joined outputs (the output projection's input) and the attention's output."""
    seen = {}
    attn = model.blocks[layer].attn
    hooks = [attn.proj.register_forward_hook(lambda m, args, out: seen.update(joined=args[0], projected=out))]
    with evaluating(model):
        trace = model.trace(torch.tensor([ids]))
        seen.clear()
        model(torch.tensor([ids]))   # the fused (SDPA) attention, not the written-out one
    for hook in hooks:
        hook.remove()
    return trace.attentions[layer][0], seen["joined"][0], seen["projected"][0]


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("layer, head, position", [(0, 0, 9), (2, 3, 4), (1, 2, 0)])
def test_each_step_is_the_models_own_attention(design, layer, head, position):
    model, tokenizer = model_and_tokenizer(**DESIGNS[design])
    steps = derive_attention(model, tokenizer, TEXT, layer, head, position)
    weights, joined, projected = what_the_block_computes(model, tokenizer.encode(TEXT), layer)
    visible = position + 1 if model.config.causal else len(steps.tokens)
    assert steps.weights.shape == (visible,) and steps.masked == len(steps.tokens) - visible
    torch.testing.assert_close(steps.weights, weights[head, position, :visible], atol=1e-6, rtol=0)
    assert float(weights[head, position, visible:].sum()) == 0          # the masked future gets nothing
    torch.testing.assert_close(steps.scores, steps.dots / math.sqrt(steps.head_dim))
    assert math.isclose(float(steps.weights.sum()), 1, abs_tol=1e-6)
    hd = steps.head_dim
    torch.testing.assert_close(steps.output, joined[position, head * hd:(head + 1) * hd], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(steps.attention_output, projected[position], atol=1e-5, rtol=1e-5)
    assert steps.rotary == (design == "rope")


def test_the_table_marks_the_future_as_masked():
    model, tokenizer = model_and_tokenizer()
    frame = derive_attention(model, tokenizer, TEXT, 0, 1, 3).to_frame()
    assert list(frame["token"]) == TEXT.split()
    assert (frame["weight"][4:] == 0).all() and (frame["÷ √d"][4:] == -math.inf).all()
    assert frame["weight"][:4].sum() == pytest.approx(1)
    assert derive_attention(model, tokenizer, TEXT, 0, 1).position == 9   # the last token by default


@pytest.mark.parametrize("where, message", [(dict(layer=3), "layer must be 1-3, got 4"),
                                            (dict(head=-1), "head must be 1-4, got 0"),
                                            (dict(position=10), "position must be 0-9 (the text has 10 tokens)")])
def test_out_of_range_choices_are_refused_with_the_range(where, message):
    model, tokenizer = model_and_tokenizer()
    with pytest.raises(ConfigError, match=re.escape(message)):
        derive_attention(model, tokenizer, TEXT, **{"layer": 0, "head": 0, "position": None, **where})

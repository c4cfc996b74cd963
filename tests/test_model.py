import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import cutellm
from cutellm import ModelConfig

from conftest import SMALL_MODEL as CFG
from conftest import seeded_model as make


def test_forward_shapes_and_loss():
    model = make()
    idx = torch.randint(0, 50, (3, 12))
    logits, loss = model(idx)
    assert logits.shape == (3, 12, 50) and loss is None
    logits, loss = model(idx, torch.randint(0, 50, (3, 12)))
    assert loss.ndim == 0 and loss.item() == pytest.approx(torch.log(torch.tensor(50.0)).item(), rel=0.1)


def test_model_is_causal():
    """Changing tokens after position t leaves the logits at positions <= t unchanged."""
    model = make()
    idx = torch.randint(0, 50, (1, 12))
    base, _ = model(idx)
    for t in range(11):
        changed = idx.clone()
        changed[0, t + 1:] = torch.randint(0, 50, (11 - t,))
        out, _ = model(changed)
        torch.testing.assert_close(out[0, : t + 1], base[0, : t + 1], atol=1e-5, rtol=0)


def test_non_causal_model_sees_the_future():
    model = make(replace(CFG, causal=False))
    idx = torch.randint(0, 50, (1, 12))
    changed = idx.clone()
    changed[0, -1] = (idx[0, -1] + 1) % 50
    assert not torch.allclose(model(idx)[0][0, 0], model(changed)[0][0, 0])


def test_sequence_longer_than_block_size_is_refused():
    with pytest.raises(ValueError, match="block_size"):
        make()(torch.zeros(1, 13, dtype=torch.long))


def test_trace_returns_causal_attention_and_hidden_states():
    model = make()
    idx = torch.randint(0, 50, (1, 7))
    tr = model.trace(idx)
    assert len(tr.attentions) == 3 and len(tr.hidden_states) == 4
    for att in tr.attentions:
        assert att.shape == (1, 4, 7, 7)
        torch.testing.assert_close(att.sum(-1), torch.ones(1, 4, 7))
        assert torch.all(att.triu(diagonal=1) == 0)
    # the fast path (scaled_dot_product_attention) and the capture path agree
    torch.testing.assert_close(tr.logits, model(idx)[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(model.logits_from_hidden(tr.hidden_states[-1]), tr.logits)


def test_lm_head_is_tied_and_parameters_counted_once():
    model = make()
    assert model.lm_head.weight is model.tok_emb.weight
    d, v, L, T = 32, 50, 3, 12
    per_block = 12 * d * d + 2 * d  # qkv + proj + MLP (4x) + two LayerNorm gains
    assert model.num_parameters() == v * d + T * d + L * per_block + d


def test_gpt2_style_init():
    model = make(ModelConfig(vocab_size=50, d_model=256, n_heads=4, n_layers=8, block_size=8))
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.blocks[0].attn.proj.weight.std().item() == pytest.approx(0.02 / 4, rel=0.1)


def test_model_file_is_the_plain_model():
    """model.py reads as the model alone: the NumPy decode step and torch's private kernels live in cutellm/fast/."""
    source = (Path(cutellm.__file__).parent / "model.py").read_text()
    assert not re.search(r"^\s*(import numpy|from numpy)", source, re.M)
    assert "np." not in source
    assert "torch._C" not in source and "_C._" not in source
    assert len(source.splitlines()) <= 300

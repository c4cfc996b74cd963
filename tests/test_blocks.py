"""The block's design options (ModelConfig.positions / norm / mlp / tie_weights): each part against its formula, the
KV cache and generation for every choice, checkpoints old and new, and clear messages for bad combinations."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, SMALL_MODEL, seeded_model

from cutellm import ConfigError, CuteLLM, ModelConfig, load_settings
from cutellm.checkpoint import checkpoint_bytes, load_checkpoint, load_checkpoint_bytes
from cutellm.fast.decode import Decoder
from cutellm.fast.kv_cache import new_cache
from cutellm.inference import encode_context, generate_ids
from cutellm.model import RMSNorm, Rotary, SwiGLU
from cutellm.presets import LLAMA_BLOCK
from cutellm.sampling import SamplingSettings
from cutellm.views.inspection import architecture_summary

# One option at a time, then Llama's three together.
DESIGNS = {"rope": dict(positions="rope"), "no positions": dict(positions="none"), "rmsnorm": dict(norm="rmsnorm"),
           "swiglu": dict(mlp="swiglu"), "untied": dict(tie_weights=False), "llama": LLAMA_BLOCK}


def test_rope_is_relative():
    """Shifting every position by the same amount leaves the attention scores between the same tokens unchanged:
    RoPE tells attention how far apart two tokens are, not where they are."""
    model = seeded_model(replace(SMALL_MODEL, positions="rope"))
    attn = model.blocks[0].attn
    x = torch.randn(1, 5, SMALL_MODEL.d_model)
    scores = []
    for shift in (0, 4):
        q, k, _ = attn._heads(x, past=shift)               # the same 5 tokens at positions shift..shift+4
        scores.append(q @ k.transpose(-2, -1))             # (1, heads, 5, 5)
    torch.testing.assert_close(scores[0], scores[1], atol=1e-5, rtol=1e-5)
    # ...while the queries themselves did move (the rotation is not the identity).
    assert not torch.allclose(attn._heads(x, 0)[0], attn._heads(x, 4)[0], atol=1e-3)


def test_rope_rotates_each_pair_by_position_times_its_speed():
    rotary = Rotary(head_dim=4, block_size=8, base=100.0)
    x = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 1, 4)
    out = rotary(x, past=3).flatten()
    a0, a1 = 3 * 1.0, 3 * 100.0 ** (-2 / 4)                 # position 3, pair speeds base^(-2i/head_dim)
    expected = torch.tensor([math.cos(a0), math.sin(a0), -math.sin(a1), math.cos(a1)])
    torch.testing.assert_close(out, expected)
    assert rotary(x, past=0).flatten().tolist() == [1.0, 0.0, 0.0, 1.0]   # position 0: no turn


def test_rmsnorm_follows_its_formula():
    norm = RMSNorm(6)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(3, 6) * 5 + 2
    expected = x / torch.sqrt((x ** 2).mean(dim=-1, keepdim=True) + norm.eps) * torch.arange(1.0, 7.0)
    torch.testing.assert_close(norm(x), expected)
    # Not centred (unlike LayerNorm): a constant vector keeps its sign and direction.
    assert torch.all(RMSNorm(4)(torch.full((4,), 3.0)) > 0.99)


def test_swiglu_follows_its_formula_at_about_gelus_parameter_count():
    config = replace(SMALL_MODEL, mlp="swiglu")
    torch.manual_seed(0)
    mlp = SwiGLU(config).eval()
    x = torch.randn(2, 3, config.d_model)
    gate_w, value_w = mlp.fc.weight.chunk(2, dim=0)          # (width, d_model) each
    expected = (F.silu(x @ gate_w.T) * (x @ value_w.T)) @ mlp.proj.weight.T
    torch.testing.assert_close(mlp(x), expected)
    gelu = sum(p.numel() for p in seeded_model(SMALL_MODEL).blocks[0].mlp.parameters())
    swiglu = sum(p.numel() for p in mlp.parameters())
    assert abs(swiglu - gelu) / gelu < 0.02, (swiglu, gelu)


@pytest.mark.parametrize("design", DESIGNS)
def test_kv_cache_and_generation_match_full_recomputation(design):
    model = seeded_model(replace(SMALL_MODEL, **DESIGNS[design]))
    idx = torch.randint(0, SMALL_MODEL.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    full, _ = model(idx)
    cache = new_cache(model, batch_size=2)
    parts = [model(idx[:, :5], cache=cache)[0]] + [model(idx[:, t:t + 1], cache=cache)[0] for t in range(5, 12)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-4)
    # The decode step (NumPy for GPT-2's block, forward() for the others) gives the same logits too.
    with torch.inference_mode():   # as generation runs it
        one = new_cache(model)
        model(idx[:1, :6], cache=one)
        step = Decoder(model, one).step(int(idx[0, 6]))
    torch.testing.assert_close(step, full[0, 6], atol=1e-5, rtol=1e-4)
    # Generation past the context (the window moves and the cache is re-read) is the same with and without it.
    sampling = SamplingSettings(temperature=0.9, seed=3)
    prompt = idx[0, :4].tolist()
    assert generate_ids(model, prompt, 20, sampling=sampling) == \
        generate_ids(model, prompt, 20, sampling=sampling, use_cache=False)


@pytest.mark.parametrize("design", DESIGNS)
def test_each_design_is_causal_and_round_trips_through_a_checkpoint(design, tiny):
    _, tokenizer, _, _ = tiny
    config = replace(SMALL_MODEL, vocab_size=tokenizer.vocab_size, **DESIGNS[design])
    model = seeded_model(config)
    idx = torch.randint(0, config.vocab_size, (1, 10), generator=torch.Generator().manual_seed(2))
    changed = idx.clone()
    changed[0, 7] = (changed[0, 7] + 1) % config.vocab_size
    torch.testing.assert_close(model(idx)[0][:, :7], model(changed)[0][:, :7])   # the future cannot leak back
    loaded, _, _ = load_checkpoint_bytes(checkpoint_bytes(model, tokenizer))
    assert loaded.config == config
    assert torch.equal(loaded(idx)[0], model(idx)[0])
    assert loaded.num_parameters() == model.num_parameters()


# Logits of the shipped models on one sentence, computed by the code before the block options existed (the last
# position's top 3). The same weights must still give them: the defaults are that block, unchanged.
BEFORE_OPTIONS = {"cute_llm.pth": ([3, 20, 8], [7.53339, 6.90053, 6.56256]),
                  "cute_bpe.pth": ([49, 341, 47], [8.66473, 7.44628, 6.76948])}


@pytest.mark.parametrize("name", BEFORE_OPTIONS)
def test_checkpoints_saved_before_the_options_load_unchanged(name):
    raw = torch.load(ROOT / "models" / name, weights_only=True)
    assert not {"positions", "norm", "mlp", "tie_weights"} & set(raw["model_config"])   # an old-format file
    model, tokenizer = load_checkpoint(ROOT / "models" / name)
    assert model.config.is_gpt2_block and model.config.tie_weights
    ids = torch.tensor([encode_context(model, tokenizer, "the cat sat on the mat and the dog ran to the park")])
    with torch.no_grad():
        logits = model(ids)[0][0, -1]
    top, values = BEFORE_OPTIONS[name]
    assert logits.topk(3).indices.tolist() == top
    torch.testing.assert_close(logits.topk(3).values, torch.tensor(values), atol=2e-5, rtol=0)
    # Bit for bit: the old file and the same weights with the options spelled out as their defaults.
    explicit = CuteLLM(ModelConfig.from_dict({**raw["model_config"], "positions": "learned", "norm": "layernorm",
                                              "mlp": "gelu", "tie_weights": True})).eval()
    explicit.load_state_dict(raw["state_dict"])
    with torch.no_grad():
        assert torch.equal(explicit(ids)[0], model(ids)[0])


def test_parts_that_a_design_drops_have_no_parameters_and_the_summary_says_so():
    llama = CuteLLM(replace(SMALL_MODEL, **LLAMA_BLOCK))
    assert llama.pos_emb is None and "pos_emb.weight" not in llama.state_dict()
    arch = architecture_summary(llama)
    names = [c.name for c in arch.components]
    assert "Position embedding" not in names and "Final RMSNorm" in names and arch.design == "Llama-style block"
    assert "RoPE" in arch.components[1].details and "SwiGLU" in arch.components[2].details
    assert sum(c.params for c in arch.components) == llama.num_parameters()
    untied = CuteLLM(replace(SMALL_MODEL, tie_weights=False))
    head = [c for c in architecture_summary(untied).components if c.kind == "head"][0]
    assert head.name == "LM head" and head.params == SMALL_MODEL.vocab_size * SMALL_MODEL.d_model
    assert untied.num_parameters() == seeded_model().num_parameters() + head.params


def test_block_design_names_the_choice():
    assert ModelConfig().block_design == "GPT-2 block"
    assert ModelConfig(**LLAMA_BLOCK).block_design == "Llama-style block"
    assert ModelConfig(mlp="swiglu", tie_weights=False).block_design == "GPT-2 block with SwiGLU, untied head"


def test_bad_combinations_get_clear_messages():
    with pytest.raises(ConfigError, match=r"head size \(d_model / n_heads = 36 / 4 = 9\) must be even; try "
                                          r"d_model 32"):
        ModelConfig(d_model=36, n_heads=4, positions="rope")
    ModelConfig(d_model=36, n_heads=4)   # an odd head size is fine without RoPE
    with pytest.raises(ConfigError, match="positions: must be one of learned, rope, none, got 'rotary'"):
        ModelConfig(positions="rotary")
    with pytest.raises(ConfigError, match="tie_weights: must be True or False"):
        ModelConfig(tie_weights="yes")
    with pytest.raises(ConfigError, match="MODEL_MLP='relu'"):
        load_settings(None, environ={"MODEL_MLP": "relu"})
    with pytest.raises(ConfigError, match="MODEL_POSITIONS='rope'.*must be even"):
        load_settings(None, environ={"MODEL_POSITIONS": "rope", "MODEL_D_MODEL": "36"})
    assert load_settings(None, environ={"MODEL_TIE_WEIGHTS": "false", "MODEL_NORM": "rmsnorm"}).model == \
        ModelConfig(tie_weights=False, norm="rmsnorm")

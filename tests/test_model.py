from dataclasses import replace

import pytest
import torch

from cutellm import CuteLLM, ModelConfig

CFG = ModelConfig(vocab_size=50, d_model=32, n_heads=4, n_layers=3, block_size=12, dropout=0.0)


def make(cfg=CFG, seed=0):
    torch.manual_seed(seed)
    return CuteLLM(cfg).eval()


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


def test_kv_cache_matches_full_recomputation():
    model = make()
    idx = torch.randint(0, 50, (2, 12))
    full, _ = model(idx)
    cache = model.new_cache(batch_size=2)
    parts = [model(idx[:, :5], cache=cache)[0]]  # prefill 5 tokens, then one at a time, then a chunk of 3
    for t in range(5, 9):
        parts.append(model(idx[:, t:t + 1], cache=cache)[0])
    parts.append(model(idx[:, 9:12], cache=cache)[0])
    assert cache.length == 12
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-4)


def test_repeated_cache_continues_each_row_like_a_full_pass():
    """A shared beginning read once, then copied for several continuations (how blanks are scored), with only the
    room the continuations need."""
    model = make()
    shared, rest = torch.randint(0, 50, (1, 4)), torch.randint(0, 50, (3, 5))
    cache = model.new_cache()
    model(shared, cache=cache)
    copy = cache.repeat(3, room=5)
    out, _ = model(rest, cache=copy)
    full, _ = model(torch.cat([shared.expand(3, -1), rest], dim=1))
    torch.testing.assert_close(out, full[:, 4:], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="full"):
        model(rest[:, :1], cache=copy)
    with pytest.raises(ValueError, match="block size"):
        cache.repeat(3, room=9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["numpy-path", "forward-path"])
def test_decode_step_matches_forward(dtype):
    """The one-token path used by generation computes what forward() computes: NumPy over the cache's memory for a
    float32 CPU cache, forward() on one token for any other (here float64, as a GPU cache would)."""
    model = make().to(dtype)
    with torch.no_grad():   # LayerNorm gains other than 1, as after training (decode_step folds them in)
        for p in model.parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)
    idx = torch.randint(0, 50, (1, 12))
    full, _ = model(idx)
    cache = model.new_cache()
    assert cache.flat == (dtype == torch.float32)
    with torch.inference_mode():
        first, _ = model(idx[:, :3], cache=cache)
        steps = [model.decode_step(int(t), cache) for t in idx[0, 3:]]
    torch.testing.assert_close(first[0], full[0, :3], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.stack(steps).to(dtype), full[0, 3:], atol=1e-5, rtol=1e-4)
    assert cache.length == 12
    with pytest.raises(ValueError, match="full"):
        model.decode_step(1, cache)


def test_decode_step_follows_changed_weights():
    """decode_step keeps its own layout of the weights; an optimiser step or load_state_dict must reach it."""
    model = make()
    idx = torch.randint(0, 50, (1, 5))

    def decoded() -> torch.Tensor:
        cache = model.new_cache()
        with torch.inference_mode():
            model(idx[:, :4], cache=cache)
            return model.decode_step(int(idx[0, 4]), cache)

    decoded()  # lays out the current weights
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)    # in place, as an optimiser step changes them
    torch.testing.assert_close(decoded(), model(idx)[0][0, -1], atol=1e-5, rtol=1e-4)
    model.load_state_dict(make(seed=7).state_dict())
    torch.testing.assert_close(decoded(), model(idx)[0][0, -1], atol=1e-5, rtol=1e-4)


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


def test_dropout_zeroes_a_fraction_p_and_keeps_the_mean():
    from cutellm.model import Dropout

    drop = Dropout(0.25)
    x = torch.ones(200_000)
    torch.manual_seed(0)
    y = drop(x)
    assert abs((y == 0).float().mean().item() - 0.25) < 0.005
    assert torch.all((y == 0) | torch.isclose(y, torch.full_like(y, 1 / 0.75)))
    assert abs(y.mean().item() - 1.0) < 0.01
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)                      # seeded: the same mask again
    assert drop.eval()(x) is x and Dropout(0.0)(x) is x  # nothing to do: the input itself

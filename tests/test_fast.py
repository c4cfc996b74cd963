"""The speed paths in cutellm/fast/, each pinned to the plain model it stands in for (tests/test_model.py tests
that one): the KV cache against full recomputation, the NumPy decode step against forward(), FastDropout against
nn.Dropout's statistics, attention under CPU autocast (written out in bf16, or fp32) against SDPA."""

import ctypes
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cutellm import CuteLLM, KVCache, ModelConfig
import cutellm.fast.attention as fast_attention
from cutellm.fast.attention import attention, causal_attention_written_out, causal_mask, writes_out
from cutellm.fast.decode import Decoder
from cutellm.fast.dropout import FastDropout, keep_mask, use_fast_dropout
from cutellm.fast.kv_cache import new_cache

from conftest import seeded_model as make


# --- the KV cache (cutellm/fast/kv_cache.py) ------------------------------------------------------------------


def test_kv_cache_matches_full_recomputation():
    model = make()
    idx = torch.randint(0, 50, (2, 12))
    full, _ = model(idx)
    cache = new_cache(model, batch_size=2)
    assert isinstance(cache, KVCache) and cache.capacity == 12
    parts = [model(idx[:, :5], cache=cache)[0]]  # prefill 5 tokens, then one at a time, then a chunk of 3
    for t in range(5, 9):
        parts.append(model(idx[:, t:t + 1], cache=cache)[0])
    parts.append(model(idx[:, 9:12], cache=cache)[0])
    assert cache.length == 12
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="block_size"):   # a full block-sized cache: the model says why
        model(idx[:, :1], cache=cache)
    cache.clear()   # the buffer is reused: the same sequence reads the same again
    torch.testing.assert_close(model(idx, cache=cache)[0], full, atol=1e-5, rtol=1e-4)


def test_repeated_cache_continues_each_row_like_a_full_pass():
    """A shared beginning read once, then copied for several continuations (how blanks are scored), with only the
    room the continuations need."""
    model = make()
    shared, rest = torch.randint(0, 50, (1, 4)), torch.randint(0, 50, (3, 5))
    cache = new_cache(model)
    model(shared, cache=cache)
    copy = cache.repeat(3, room=5)
    assert copy.kv.shape[1:3] == (3, 9) and copy.length == 4
    out, _ = model(rest, cache=copy)
    full, _ = model(torch.cat([shared.expand(3, -1), rest], dim=1))
    torch.testing.assert_close(out, full[:, 4:], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="full"):
        model(rest[:, :1], cache=copy)
    with pytest.raises(ValueError, match="block size"):
        cache.repeat(3, room=9)


# --- the one-token decode step (cutellm/fast/decode.py) -------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["numpy-path", "forward-path"])
def test_decode_step_matches_forward(dtype):
    """The one-token path used by generation computes what forward() computes: NumPy over the cache's memory for a
    float32 CPU cache, forward() on one token for any other (here float64, as a GPU cache would)."""
    model = make().to(dtype)
    with torch.no_grad():   # LayerNorm gains other than 1, as after training (the decode step folds them in)
        for p in model.parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)
    idx = torch.randint(0, 50, (1, 12))
    full, _ = model(idx)
    cache = new_cache(model)
    decoder = Decoder(model, cache)
    assert decoder.flat == (dtype == torch.float32)
    with torch.inference_mode():
        first, _ = model(idx[:, :3], cache=cache)
        steps = [decoder.step(int(t)) for t in idx[0, 3:]]
    torch.testing.assert_close(first[0], full[0, :3], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.stack(steps).to(dtype), full[0, 3:], atol=1e-5, rtol=1e-4)
    assert cache.length == 12
    with pytest.raises(ValueError, match="full"):
        decoder.step(1)
    # A cleared cache is filled again through the same decoder (generation does this when its window moves).
    cache.clear()
    with torch.inference_mode():
        model(idx[:, :1], cache=cache)
        again = [decoder.step(int(t)) for t in idx[0, 1:]]
    torch.testing.assert_close(torch.stack(again).to(dtype), full[0, 1:], atol=1e-5, rtol=1e-4)


def test_decode_step_follows_changed_weights():
    """The decode step keeps its own layout of the weights; an optimiser step or load_state_dict must reach it."""
    model = make()
    idx = torch.randint(0, 50, (1, 5))

    def decoded() -> torch.Tensor:
        cache = new_cache(model)
        with torch.inference_mode():
            model(idx[:, :4], cache=cache)
            return Decoder(model, cache).step(int(idx[0, 4]))

    decoded()  # lays out the current weights
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)    # in place, as an optimiser step changes them
    torch.testing.assert_close(decoded(), model(idx)[0][0, -1], atol=1e-5, rtol=1e-4)
    model.load_state_dict(make(seed=7).state_dict())
    torch.testing.assert_close(decoded(), model(idx)[0][0, -1], atol=1e-5, rtol=1e-4)


# --- dropout (cutellm/fast/dropout.py) ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [FastDropout, nn.Dropout], ids=["fast", "torch"])
def test_dropout_zeroes_a_fraction_p_and_keeps_the_mean(kind):
    """FastDropout against the statistics nn.Dropout itself meets (the same checks run on both)."""
    drop = kind(0.25)
    x = torch.ones(200_000)
    torch.manual_seed(0)
    y = drop(x)
    assert abs((y == 0).float().mean().item() - 0.25) < 0.005
    assert torch.all((y == 0) | torch.isclose(y, torch.full_like(y, 1 / 0.75)))
    assert abs(y.mean().item() - 1.0) < 0.01
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)                      # seeded: the same mask again
    assert drop.eval()(x) is x


def test_keep_mask_is_seeded_by_torch_and_exact_at_the_ends():
    torch.manual_seed(3)
    a = keep_mask((64, 50), 0.3)
    torch.manual_seed(3)
    assert torch.equal(keep_mask((64, 50), 0.3), a) and a.shape == (64, 50) and a.dtype == torch.bool
    assert not torch.equal(keep_mask((64, 50), 0.3), a)        # the generator moved on: a new mask
    assert keep_mask((10,), 0.0).all() and not keep_mask((10,), 1.0).any()


def test_written_out_attention_with_nothing_dropped_is_sdpa():
    """Training with dropout writes attention out (to drop weights with FastDropout); with a mask that keeps
    everything it must give what SDPA gives."""
    cfg = ModelConfig(vocab_size=50, d_model=32, n_heads=4, n_layers=2, block_size=12, dropout=0.2)
    torch.manual_seed(0)
    model = CuteLLM(cfg)
    idx = torch.randint(0, 50, (3, 12))
    expected = model.eval()(idx)[0]
    for m in model.modules():
        if isinstance(m, FastDropout):
            m.p = 1e-12          # still "training with dropout", but (almost surely) nothing is dropped
    model.train()
    torch.testing.assert_close(model(idx)[0], expected, atol=1e-5, rtol=1e-5)


def test_fast_dropout_passes_through_when_off():
    x = torch.ones(1000)
    assert FastDropout(0.25).eval()(x) is x and FastDropout(0.0)(x) is x  # nothing to do: the input itself


def test_model_trains_with_fast_dropout_and_keeps_its_keys(monkeypatch):
    """CuteLLM swaps its nn.Dropout modules for FastDropout: same p, same state_dict keys and weights as the plain
    model (checkpoints load as before), the same outputs in eval mode."""
    cfg = ModelConfig(vocab_size=50, d_model=32, n_heads=4, n_layers=2, block_size=12, dropout=0.2)
    torch.manual_seed(0)
    model = CuteLLM(cfg)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    # the embeddings', then per block the attention weights', the attention output's and the MLP's
    assert len(drops) == 1 + 2 * 3 and all(type(m) is FastDropout and m.p == 0.2 for m in drops)

    monkeypatch.setattr("cutellm.model.use_fast_dropout", lambda m: m)   # the model as written: nn.Dropout
    torch.manual_seed(0)
    plain = CuteLLM(cfg)
    assert all(type(m) is nn.Dropout for m in plain.modules() if isinstance(m, nn.Dropout))
    assert list(plain.state_dict()) == list(model.state_dict())
    for (name, a), b in zip(plain.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    idx = torch.randint(0, 50, (2, 12))
    torch.testing.assert_close(plain.eval()(idx)[0], model.eval()(idx)[0], atol=0, rtol=0)

    seq = use_fast_dropout(nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.1))))
    assert type(seq[1][0]) is FastDropout and seq[1][0].p == 0.1   # nested modules too


# --- attention under CPU bf16 autocast (cutellm/fast/attention.py) ------------------------------------------


def _qkv(dtype: torch.dtype, T: int = 12) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(2, 4, T, 8).to(dtype).requires_grad_() for _ in range(3)]   # (B, heads, T, hd)


def _grads(out: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return torch.autograd.grad(out.float().pow(2).sum(), inputs)


def _no_sdpa(*args, **kwargs):
    raise AssertionError("SDPA was called")


@pytest.mark.parametrize("mask", [False, True])
def test_attention_is_sdpa_outside_autocast(mask):
    q, k, v = _qkv(torch.float32)
    attn_mask = torch.ones(12, 12, dtype=torch.bool).tril() if mask else None
    ours = attention(q, k, v, attn_mask=attn_mask, is_causal=not mask)
    plain = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=not mask)
    torch.testing.assert_close(ours, plain, atol=0, rtol=0)


def test_written_out_attention_is_sdpa():
    """The written-out maths (scores with the causal mask added, softmax, weights times values) in fp32 gives SDPA's
    output and gradients: only rounding differs."""
    q, k, v = _qkv(torch.float32, T=20)
    ours = causal_attention_written_out(q, k, v)
    plain = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, plain, atol=1e-5, rtol=1e-5)
    for a, b in zip(_grads(ours, [q, k, v]), _grads(plain, [q, k, v])):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert causal_mask(20, torch.float32, q.device) is causal_mask(20, torch.float32, q.device)   # made once


def test_short_causal_windows_under_cpu_autocast_are_written_out_in_bf16(monkeypatch):
    """bf16 inputs under CPU autocast, causal, short windows: computed written out in bf16, never through SDPA,
    within bf16's rounding of SDPA in fp32, gradients included, and they reach the bf16 query, key and value."""
    q, k, v = _qkv(torch.bfloat16)
    exact = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    exact_grads = _grads(exact, [q, k, v])
    monkeypatch.setattr(fast_attention.F, "scaled_dot_product_attention", _no_sdpa)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = attention(q, k, v, is_causal=True)
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), exact, atol=3e-2, rtol=3e-2)
    for a, b in zip(_grads(ours, [q, k, v]), exact_grads):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.float(), b.float(), atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("case", ["mask", "long windows"])
def test_attention_under_cpu_autocast_is_otherwise_sdpa_in_fp32(case, monkeypatch):
    """An explicit mask, or windows past WRITTEN_OUT_MAX_T: SDPA on the same inputs computed in fp32."""
    q, k, v = _qkv(torch.bfloat16)
    attn_mask = torch.ones(12, 12, dtype=torch.bool).tril() if case == "mask" else None
    if case == "long windows":
        monkeypatch.setattr(fast_attention, "WRITTEN_OUT_MAX_T", 11)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = attention(q, k, v, attn_mask=attn_mask, is_causal=attn_mask is None)
    in_fp32 = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask,
                                             is_causal=attn_mask is None)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, in_fp32, atol=0, rtol=0)
    ours.sum().backward()
    assert all(t.grad is not None and t.grad.dtype == torch.bfloat16 for t in (q, k, v))


def test_what_is_written_out():
    """The decision: CPU bf16 autocast, causal with no other mask, up to WRITTEN_OUT_MAX_T positions and
    WRITTEN_OUT_MAX_WEIGHTS weights per layer."""
    longest = fast_attention.WRITTEN_OUT_MAX_T
    short, long = torch.zeros(1, 1, longest, 8, dtype=torch.bfloat16), torch.zeros(1, 1, longest + 1, 8,
                                                                                   dtype=torch.bfloat16)
    many = torch.zeros(fast_attention.WRITTEN_OUT_MAX_WEIGHTS // 64 ** 2 + 1, 1, 64, 8, dtype=torch.bfloat16)
    mask = torch.ones(longest, longest, dtype=torch.bool)
    assert not writes_out(short, None, True)                       # outside autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert writes_out(short, None, True) and writes_out(many[:-1], None, True)
        assert not writes_out(long, None, True)                    # too long a window
        assert not writes_out(many, None, True)                    # too many weights to keep
        assert not writes_out(short, mask, False) and not writes_out(short, mask, True)    # a mask of its own
        assert not writes_out(short, None, False)                  # no mask at all
        assert not writes_out(short.float(), None, True)           # fp32 inputs: training in fp32


def test_the_model_writes_attention_out_when_the_cpu_trains_in_bf16(monkeypatch):
    """The wiring: under CPU bf16 autocast the model's attention goes the written-out way (no SDPA call), what
    reaches each output projection is bf16, and the loss matches fp32 SDPA's within bf16 rounding."""
    model = make().train()
    idx, targets = torch.randint(0, 50, (2, 12)), torch.randint(0, 50, (2, 12))
    with monkeypatch.context() as m, torch.autocast("cpu", dtype=torch.bfloat16):
        m.setattr(fast_attention, "WRITTEN_OUT_MAX_T", 0)             # the reference: SDPA in fp32
        _, via_sdpa = model(idx, targets)
    seen = []
    for block in model.blocks:
        block.attn.proj.register_forward_hook(lambda mod, inputs, out: seen.append((inputs[0].dtype, out.dtype)))
    monkeypatch.setattr(fast_attention.F, "scaled_dot_product_attention", _no_sdpa)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = model(idx, targets)
    loss.backward()
    assert seen == [(torch.bfloat16, torch.bfloat16)] * len(model.blocks)
    torch.testing.assert_close(loss, via_sdpa, atol=2e-2, rtol=2e-2)


# --- kept memory (cutellm/fast/memory.py) ---------------------------------------------------------------------

KEPT = """
import ctypes, torch
from cutellm.fast.memory import keep_freed_memory
class MallInfo2(ctypes.Structure):   # glibc's struct mallinfo2 (malloc.h): ten size_t counters
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
def step():   # a training step's pattern: a few MB of temporaries, every page written, then freed
    xs = [torch.ones(1024 * 1024) for _ in range(3)]
    del xs
def free_in_heap_mb():   # what malloc holds, free, for the next step after two steps
    step()
    step()
    return libc.mallinfo2().fordblks / 2 ** 20
# glibc's default adjusts itself to what the process did before (in one run 5 MB were kept, in another 13): start
# from its fixed thresholds instead, under which a freed 4 MB block goes straight back to the kernel.
libc.mallopt(-1, 128 * 1024)   # M_TRIM_THRESHOLD
libc.mallopt(-3, 128 * 1024)   # M_MMAP_THRESHOLD
before = free_in_heap_mb()
kept = keep_freed_memory()
print(kept, before, free_in_heap_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc (Linux)")
def test_kept_memory_keeps_a_steps_temporaries_for_the_next():
    """In a process of its own (the setting is the whole process's): from glibc's fixed thresholds, a step's 12 MB of
    temporaries go back to the kernel, and the next step takes them again as fresh pages (page faults); with
    keep_freed_memory() all 12 MB stay in malloc's heap, free, for the next step."""
    if not hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2"):
        pytest.skip("glibc older than 2.33 (no mallinfo2)")
    out = subprocess.run([sys.executable, "-c", KEPT], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    kept, before, after = out.stdout.split()
    assert kept == "True"
    assert float(after) >= 12 > float(before)


# --- the old names ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, place", [("KVCache", "cutellm.fast.kv_cache"), ("Dropout", "cutellm.fast.dropout"),
                                         ("DecodeWeights", "cutellm.fast.decode"),
                                         ("BlockWeights", "cutellm.fast.decode"), ("VectorNorm", "cutellm.fast.decode"),
                                         ("DecodeViews", "cutellm.fast.decode")])
def test_old_names_in_model_say_where_they_moved(name, place):
    model_module = importlib.import_module("cutellm.model")
    with pytest.raises(ImportError, match=place):
        exec(f"from cutellm.model import {name}", {})
    with pytest.raises(ImportError, match=place):
        getattr(model_module, name)
    with pytest.raises(AttributeError):
        getattr(model_module, "NoSuchName")

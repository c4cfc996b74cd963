"""Attention when a CPU trains in bf16 autocast: written out in bf16 for short windows, SDPA in fp32 otherwise.

Under bf16 autocast the query, key and value come out of a bf16 matmul, so `scaled_dot_product_attention` runs its
bf16 kernel. On the CPU (torch 2.13), that kernel's backward is about four times slower than its fp32 one at a tiny
model's shapes: 12 windows x 4 heads x 64 positions x 32 dims took 5.9 ms against 1.4 ms on one core of an AMD
EPYC (bench/README.md, "Speed, round thirteen"). Two ways round it, measured on the same host:

- **Written out in bf16** (`causal_attention_written_out`): the scores as one batched product with the causal mask
  added, softmax, a second batched product, each (window, head) pair one matrix of the batch. It is how autocast
  computes attention without a fused kernel (and how the model's dropout path does it, model.py), and at these
  shapes the fastest: forward and backward 1.90 ms against fp32 SDPA's 2.64 on one core, 1.08 against 1.78 on two
  ("Speed, round fifteen"). It keeps each layer's (B x heads, T, T) weights for the backward pass, so it is used
  for windows of up to WRITTEN_OUT_MAX_T positions while those weights stay within WRITTEN_OUT_MAX_WEIGHTS.
- **SDPA in fp32** for longer windows or an explicit mask: attention's own products are small, so fp32 costs
  little there; the large products around it (the query/key/value and output projections, the MLP, the head)
  stay bf16.

`attention` is the plain call everywhere else: fp32 inference, a GPU (whose bf16 attention is its fast path), a
model trained in fp32. tests/test_fast.py pins each path to the plain call: the same output in fp32, SDPA on the
same inputs in fp32 under autocast, and the written-out path within bf16's rounding of it, gradients included.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

WRITTEN_OUT_MAX_T = 512             # the longest window written out (SDPA's kernel is level with it by 1,024)
WRITTEN_OUT_MAX_WEIGHTS = 1 << 22   # attention weights per layer written out: 4M bf16 numbers, 8 MB kept per layer


def in_cpu_autocast(q: torch.Tensor) -> bool:
    """True for bf16 inputs under CPU bf16 autocast: a CPU training step in bf16."""
    return q.device.type == "cpu" and q.dtype == torch.bfloat16 and torch.is_autocast_enabled("cpu")


def writes_out(q: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool) -> bool:
    """True when `attention` computes causal attention written out in bf16 instead of through SDPA: CPU autocast,
    the causal mask alone, windows of up to WRITTEN_OUT_MAX_T positions and weights within WRITTEN_OUT_MAX_WEIGHTS."""
    B, H, T, _ = q.shape
    return (in_cpu_autocast(q) and is_causal and attn_mask is None and T <= WRITTEN_OUT_MAX_T
            and B * H * T * T <= WRITTEN_OUT_MAX_WEIGHTS)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
              is_causal: bool = False) -> torch.Tensor:
    """F.scaled_dot_product_attention(q, k, v, attn_mask, is_causal), written out in bf16 or computed in fp32 when
    bf16 inputs reach it under CPU autocast (the module's docstring says when and why).
    (B, heads, T, hd) x 3 -> (B, heads, T, hd)."""
    if writes_out(q, attn_mask, is_causal):
        return causal_attention_written_out(q, k, v)
    if in_cpu_autocast(q):
        with torch.autocast("cpu", enabled=False):   # else autocast would cast the fp32 inputs back to bf16
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask,
                                                  is_causal=is_causal)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)


def causal_attention_written_out(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(hd) + causal mask) v in the inputs' dtype, every (window, head) pair one matrix of a
    batched product. (B, heads, T, hd) x 3 -> (B, heads, T, hd)."""
    B, H, T, hd = q.shape
    # baddbmm adds the (T, T) mask to every matrix as it multiplies: mask + (q k^T) / sqrt(hd),
    # (B*H, T, hd) @ (B*H, hd, T) -> (B*H, T, T)
    scores = torch.baddbmm(causal_mask(T, q.dtype, q.device), q.reshape(B * H, T, hd),
                           k.reshape(B * H, T, hd).transpose(1, 2), alpha=1.0 / math.sqrt(hd))
    return torch.bmm(scores.softmax(dim=-1), v.reshape(B * H, T, hd)).view(B, H, T, hd)   # (B*H, T, T) @ (B*H, T, hd)


@lru_cache(maxsize=8)
def causal_mask(T: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(T, T): 0 where query i may see key j (j <= i), -inf above the diagonal. Made once per shape, not per layer
    and step (read only: baddbmm adds it into a new tensor)."""
    return torch.full((T, T), float("-inf"), dtype=dtype, device=device).triu(diagonal=1)

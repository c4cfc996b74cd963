"""Attention in fp32 when a CPU trains in bf16 autocast.

Under bf16 autocast the query, key and value come out of a bf16 matmul, so `scaled_dot_product_attention` runs its
bf16 kernel. On the CPU (torch 2.13), that kernel's backward is about four times slower than its fp32 one at a tiny
model's shapes: 12 windows x 4 heads x 64 positions x 32 dims took 5.9 ms against 1.4 ms on one core of an AMD
EPYC, 3.3 against 0.7 on two, and was 41% of the benchmark model's training step (bench/README.md, "Speed, round
thirteen"). Attention's own products are small, so fp32 costs little there; the large products around it (the
query/key/value and output projections, the MLP, the head) stay bf16. `attention` is the plain call everywhere
else: fp32 inference, a GPU (whose bf16 attention is its fast path), a model trained in fp32.
tests/test_fast.py pins it to the plain call: the same output in fp32, and under autocast, SDPA on the same
inputs computed in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
              is_causal: bool = False) -> torch.Tensor:
    """F.scaled_dot_product_attention(q, k, v, attn_mask, is_causal), computed in fp32 when bf16 inputs reach it
    under CPU autocast (the module's docstring says why). (B, heads, T, hd) x 3 -> (B, heads, T, hd)."""
    if q.device.type == "cpu" and q.dtype == torch.bfloat16 and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):   # else autocast would cast the fp32 inputs back to bf16
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask,
                                                  is_causal=is_causal)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)

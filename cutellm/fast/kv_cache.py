"""A KV cache: a new token attends to the stored keys and values of the tokens before it, instead of the model
recomputing the whole prefix for every token it generates. tests/test_fast.py pins it to full recomputation.

The buffer is allocated once, shape (layers, batch, capacity, 3, heads, head_dim), and filled up to `length`.
Per token it holds query, key and value side by side, in the order the attention's qkv product makes them, so the
NumPy decode step (fast/decode.py) writes a token's key and value straight into it with one product; the query slot
is that step's scratch space. The batched path (`append`, called by the model's attention) stores keys and values
only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..model import CuteLLM


def new_cache(model: CuteLLM, batch_size: int = 1) -> KVCache:
    """An empty cache for `batch_size` sequences of up to block_size tokens, on the model's device, in its dtype."""
    c = model.config
    return KVCache(model.tok_emb.weight.new_zeros((c.n_layers, batch_size, c.block_size, 3, c.n_heads, c.head_dim)))


class KVCache:
    """Keys and values of the tokens read so far, for every layer. `length` counts the tokens stored (the same for
    every sequence of the batch): through `append` every layer stores the same new tokens, and they count once the
    last layer has stored them."""

    def __init__(self, kv: torch.Tensor, length: int = 0):
        self.kv = kv            # (layers, batch, capacity, 3: query/key/value, heads, head_dim)
        self.length = length

    @property
    def capacity(self) -> int:
        return self.kv.size(2)

    def ensure_room(self, new: int) -> None:
        if self.length + new > self.capacity:
            raise ValueError(f"the cache is full ({self.capacity} tokens); re-read a shorter window first")

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store `layer`'s keys/values (batch, heads, new tokens, head_dim) after the stored ones; return all of
        that layer's keys and values so far, as (batch, heads, tokens, head_dim) views of the buffer."""
        new = k.size(2)
        self.ensure_room(new)
        start, end = self.length, self.length + new
        kv = self.kv[layer]                       # (batch, capacity, 3, heads, head_dim)
        kv[:, start:end, 1] = k.transpose(1, 2)   # (batch, heads, new, head_dim) -> (batch, new, heads, head_dim)
        kv[:, start:end, 2] = v.transpose(1, 2)
        if layer == self.kv.size(0) - 1:
            self.length = end
        return kv[:, :end, 1].transpose(1, 2), kv[:, :end, 2].transpose(1, 2)

    def clear(self) -> None:
        """Forget every stored token (the buffer is reused)."""
        self.length = 0

    def repeat(self, batch_size: int, room: int | None = None) -> KVCache:
        """A cache of `batch_size` sequences that all start with this cache's first sequence (e.g. one sentence's
        shared beginning, read once, then continued in many ways), with room for `room` more tokens each (default:
        up to the capacity). Only the room asked for is allocated: for a thousand continuations of a few tokens,
        a block-sized buffer would be mostly zeros written for nothing."""
        capacity = self.capacity if room is None else self.length + room
        if capacity > self.capacity:
            raise ValueError(f"room for {room} more tokens after {self.length} exceeds the block size "
                             f"({self.capacity})")
        layers, _, _, *per_token = self.kv.shape
        kv = self.kv.new_zeros((layers, batch_size, capacity, *per_token))
        kv[:, :, :self.length] = self.kv[:, :1, :self.length]
        return KVCache(kv, self.length)

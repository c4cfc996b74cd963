"""CuteLLM: a small decoder-only (GPT-style) transformer, in the spirit of nanoGPT's model.py.

token ids -> token embedding + learned position embedding -> N x [pre-LayerNorm causal self-attention, pre-LayerNorm
MLP] (each with a residual connection) -> final LayerNorm -> LM head (weights tied to the token embedding) -> logits.

Position t only ever attends to positions 0..t, so the logits at t depend on tokens 0..t alone. Two extras serve the
app: a KV cache that makes generation cheap (each new token attends to stored keys/values instead of recomputing the
prefix), and `trace()`, which returns every layer's attention weights and hidden states for the Explore page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout, skipped outright when it would do nothing (p = 0 or eval mode): a token of generation makes 13
    such calls, and even a no-op call costs a few microseconds."""
    return F.dropout(x, p, training) if training and p > 0 else x


class KVCache:
    """Keys and values of the tokens seen so far, for every layer: two buffers of shape
    (layers, batch, heads, block_size, head_dim), allocated on first use and filled up to `length`."""

    def __init__(self, config: ModelConfig, weights: list[tuple[torch.Tensor, ...]] | None = None):
        self.config = config
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.length = 0
        # For decode_step: each block's weights and each layer's (heads, block_size, head_dim) buffer of sequence 0,
        # looked up once per generation rather than once per token.
        self.weights = weights or []
        self.layer_keys: list[torch.Tensor] = []
        self.layer_values: list[torch.Tensor] = []

    def reserve(self, batch: int, like: torch.Tensor) -> None:
        if self.keys is None:
            c = self.config
            shape = (c.n_layers, batch, c.n_heads, c.block_size, c.head_dim)
            self.keys = like.new_zeros(shape)
            self.values = like.new_zeros(shape)
            self.layer_keys = list(self.keys[:, 0])
            self.layer_values = list(self.values[:, 0])

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new tokens' keys/values after the stored ones; return all keys/values so far."""
        end = self.length + k.size(2)
        self.keys[layer, :, :, self.length:end] = k
        self.values[layer, :, :, self.length:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.causal = config.causal
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, C = x.shape
        # (B, T, 3C) -> three (B, heads, T, head_dim) views
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.store(layer, k, v)

        # Query i (absolute position past + i) may see keys 0..past + i. With one new query and a cache that is
        # "everything", so no mask is needed; a fresh sequence uses the causal fast path.
        mask = None
        is_causal = self.causal and T > 1 and past == 0
        if self.causal and T > 1 and past > 0:
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)

        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            if is_causal:
                mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = scores.softmax(dim=-1)
            y = weights @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                               dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return dropout(self.proj(y), self.dropout, self.training), weights


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, 4 * config.d_model, bias=False)
        self.proj = nn.Linear(4 * config.d_model, config.d_model, bias=False)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(self.proj(F.gelu(self.fc(x))), self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model, bias=False)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model, bias=False)
        self.mlp = MLP(config)

    def forward(self, x, cache=None, layer=0, need_weights=False):
        a, weights = self.attn(self.ln1(x), cache, layer, need_weights)
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return x, weights


@dataclass
class ModelTrace:
    """What happened inside one forward pass (batch of 1 or more), for inspection."""

    logits: torch.Tensor                 # (B, T, vocab)
    attentions: list[torch.Tensor]       # per layer: (B, heads, T, T), rows sum to 1
    hidden_states: list[torch.Tensor]    # embeddings, then the output of each block: n_layers + 1 of (B, T, d_model)


class CuteLLM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.block_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model, bias=False)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        # Weight tying: reading a word and writing a word share one embedding table (fewer parameters, better
        # small-data generalisation).
        self.lm_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layers) so the residual stream's variance stays
        # put however deep the model is.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters; the tied embedding/LM-head matrix counts once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def device(self) -> torch.device:
        return self.tok_emb.weight.device

    def _embed(self, idx: torch.Tensor, past: int) -> torch.Tensor:
        T = idx.size(1)
        if past + T > self.config.block_size:
            raise ValueError(f"sequence of {past + T} tokens is longer than the model's block_size "
                             f"({self.config.block_size}); crop it first")
        # Positions past..past+T-1: a slice of the position table (same values and gradients as pos_emb(arange)).
        pos = self.pos_emb.weight[past:past + T]
        return dropout(self.tok_emb(idx) + pos, self.config.dropout, self.training)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> (logits (B, T, vocab), mean cross-entropy loss or None).

        With `cache`, idx holds only the new tokens; their keys/values are appended to the cache.
        """
        x = self._embed(idx, cache.length if cache is not None else 0)
        if cache is not None:
            cache.reserve(idx.size(0), x)
        for i, block in enumerate(self.blocks):
            x, _ = block(x, cache, i)
        if cache is not None:
            cache.length += idx.size(1)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def new_cache(self) -> KVCache:
        weights = [(b.ln1.weight, b.attn.qkv.weight, b.attn.proj.weight, b.ln2.weight, b.mlp.fc.weight,
                    b.mlp.proj.weight) for b in self.blocks]
        return KVCache(self.config, weights)

    def decode_step(self, token: int, cache: KVCache) -> torch.Tensor:
        """Logits (vocab,) for the next token after feeding one `token` to a cache filled by `forward(cache=...)`
        (batch of 1, eval mode, inside torch.inference_mode or no_grad).

        The same maths as forward() on one position, written flat with functional calls: for a single token, Python
        dispatch through the modules costs more than the arithmetic, and this path generates ~1.6x faster.
        `tests/test_model.py` checks it against forward().
        """
        c, pos = self.config, cache.length
        if pos >= c.block_size:
            raise ValueError(f"the cache is full ({c.block_size} tokens); re-read a shorter window first")
        C, H, hd = c.d_model, c.n_heads, c.head_dim
        x = self.tok_emb.weight[token] + self.pos_emb.weight[pos]
        for keys, values, (ln1, qkv, proj, ln2, fc, fc_proj) in zip(cache.layer_keys, cache.layer_values,
                                                                    cache.weights):
            q, k, v = F.linear(F.layer_norm(x, (C,), ln1), qkv).view(3, H, 1, hd)
            keys[:, pos:pos + 1] = k
            values[:, pos:pos + 1] = v
            weights = torch.softmax((q @ keys[:, :pos + 1].transpose(1, 2)) / math.sqrt(hd), dim=-1)
            x = x + F.linear((weights @ values[:, :pos + 1]).view(C), proj)
            x = x + F.linear(F.gelu(F.linear(F.layer_norm(x, (C,), ln2), fc)), fc_proj)
        cache.length = pos + 1
        return F.linear(F.layer_norm(x, (C,), self.ln_f.weight), self.tok_emb.weight)

    @torch.no_grad()
    def trace(self, idx: torch.Tensor) -> ModelTrace:
        """Forward pass that also returns every layer's attention weights and hidden states."""
        x = self._embed(idx, 0)
        hidden, attentions = [x], []
        for i, block in enumerate(self.blocks):
            x, weights = block(x, None, i, need_weights=True)
            hidden.append(x)
            attentions.append(weights)
        logits = self.lm_head(self.ln_f(x))
        return ModelTrace(logits=logits, attentions=attentions, hidden_states=hidden)

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final LayerNorm + LM head applied to any hidden state (the "logit lens")."""
        return self.lm_head(self.ln_f(hidden))

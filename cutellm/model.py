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
    """Per-layer keys and values, shape (batch, heads, tokens_so_far, head_dim), grown by each forward call."""

    def __init__(self, n_layers: int):
        self.layers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layers

    @property
    def length(self) -> int:
        first = self.layers[0]
        return 0 if first is None else first[0].size(2)


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
            stored = cache.layers[layer]
            if stored is not None:
                past = stored[0].size(2)
                k = torch.cat((stored[0], k), dim=2)
                v = torch.cat((stored[1], v), dim=2)
            cache.layers[layer] = (k, v)

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
        for i, block in enumerate(self.blocks):
            x, _ = block(x, cache, i)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def new_cache(self) -> KVCache:
        return KVCache(self.config.n_layers)

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

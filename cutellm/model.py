"""CuteLLM: a small decoder-only (GPT-style) transformer, in the spirit of nanoGPT's model.py.

token ids -> token embedding + learned position embedding -> N x [pre-LayerNorm causal self-attention, pre-LayerNorm
MLP] (each with a residual connection) -> final LayerNorm -> LM head (weights tied to the token embedding) -> logits.

That is GPT-2's block, the default. Four settings of ModelConfig swap one part each for the choice Llama made:
`positions="rope"` rotates queries and keys by position instead of adding a position table (`Rotary`),
`norm="rmsnorm"` divides by the root mean square without centring (`RMSNorm`), `mlp="swiglu"` gates the MLP
(`SwiGLU`), and `tie_weights=False` gives the LM head a matrix of its own. The module names stay the same for every
choice (ln1, attn, ln2, mlp, ln_f, lm_head), so the inspection and ablation code reads any of them.

Position t only ever attends to positions 0..t, so the logits at t depend on tokens 0..t alone. That is what lets
generation keep the keys and values of the tokens already read (a KV cache, `cutellm/fast/kv_cache.py`) and feed
the model only the new token: forward() takes such a cache.

This file is the plain model. The speed paths live in cutellm/fast/, each pinned by tests/test_fast.py to the
plain path here: the KV cache, the one-token NumPy decode step (fast/decode.py), a cheaper dropout mask
(fast/dropout.py) and attention written out in bf16, or SDPA in fp32, when a CPU trains in bf16 (fast/attention.py).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .fast.attention import attention
from .fast.dropout import use_fast_dropout

if TYPE_CHECKING:
    from .fast.kv_cache import KVCache


class RMSNorm(nn.Module):
    """Llama's normalisation: x / sqrt(mean(x^2) + eps) * gain. LayerNorm also subtracts the mean; RMSNorm keeps
    only the rescaling, which is what matters in practice, and computes one statistic instead of two."""

    def __init__(self, size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight   # (..., C)


def make_norm(config: ModelConfig) -> nn.Module:
    return nn.LayerNorm(config.d_model, bias=False) if config.norm == "layernorm" else RMSNorm(config.d_model)


class Rotary(nn.Module):
    """RoPE (Su et al. 2021): split each head's query and key into pairs of numbers, and turn pair i at position p by
    the angle p * base^(-2i / head_dim), a point rotated in its plane. The dot product of a query at position m with a
    key at position n then depends on their content and on m - n only: attention sees how far back a token is, not
    where it is, and no position vector is added to the residual stream."""

    def __init__(self, head_dim: int, block_size: int, base: float = 10000.0):
        super().__init__()
        speeds = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)   # (head_dim / 2,)
        angles = torch.outer(torch.arange(block_size, dtype=torch.float32), speeds)         # (block_size, hd / 2)
        # Not saved in checkpoints (persistent=False): they follow from the config.
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, past: int = 0) -> torch.Tensor:
        """x (B, heads, T, head_dim) at positions past..past+T-1 -> the same, each pair rotated."""
        T = x.size(-2)
        cos, sin = self.cos[past:past + T], self.sin[past:past + T]             # (T, hd / 2)
        even, odd = x[..., 0::2], x[..., 1::2]                                   # the pairs' two numbers
        turned = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)   # (B, heads, T, hd/2, 2)
        return turned.flatten(-2).type_as(x)                                     # (B, heads, T, hd)


class CausalSelfAttention(nn.Module):
    """Each position mixes the values of the positions up to it, weighted by how well its query matches their keys:
    softmax(q k^T / sqrt(head_dim)) v, in n_heads independent heads of head_dim each."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.causal = config.causal
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)   # query, key, value in one product
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.attn_dropout = nn.Dropout(config.dropout)    # on the attention weights, while training
        self.resid_dropout = nn.Dropout(config.dropout)
        self.rotary = Rotary(config.head_dim, config.block_size) if config.positions == "rope" else None

    def _heads(self, x: torch.Tensor, past: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        # (B, T, C) -> (B, T, 3C) -> (B, T, 3, heads, head_dim) -> three (B, heads, T, head_dim)
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary is not None:   # RoPE: position enters here, in the query and the key (a key is cached rotated)
            q, k = self.rotary(q, past), self.rotary(k, past)
        return q, k, v

    def _merge(self, y: torch.Tensor) -> torch.Tensor:
        B, _, T, _ = y.shape
        # (B, heads, T, head_dim) -> (B, T, heads * head_dim = C), then the output projection
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(B, T, -1)))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """(B, T, C) -> (B, T, C) with PyTorch's fused scaled_dot_product_attention; training with dropout writes the
        weights out to drop some. With a cache, x holds only the new tokens: they attend to every stored one."""
        past = cache.length if cache is not None else 0
        q, k, v = self._heads(x, past)
        T = x.size(1)
        if cache is not None:
            k, v = cache.append(layer, k, v)   # (B, heads, past + T, head_dim)
        if self.training and self.dropout > 0 and past == 0:
            return self._merge(self.attn_dropout(self._weights(q, k)) @ v)   # (B, heads, T, T) @ (B, heads, T, hd)
        # Query i (absolute position past + i) may see keys 0..past + i. One new query after a cache sees everything
        # stored, so it needs no mask; a fresh sequence uses SDPA's causal flag.
        mask = None
        if self.causal and T > 1 and past > 0:
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        y = attention(q, k, v, attn_mask=mask, is_causal=self.causal and T > 1 and past == 0)   # CPU bf16: fast/
        return self._merge(y)                                                   # y: (B, heads, T, hd)

    def _weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T / sqrt(head_dim)), each query's future keys masked out: (B, heads, T, T), rows sum to 1."""
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)   # (B, heads, T, hd) @ (B, heads, hd, T)
        if self.causal:
            future = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).triu(diagonal=1)
            scores = scores.masked_fill(future, float("-inf"))
        return scores.softmax(dim=-1)

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same attention written out, because SDPA never materialises the weights that the Explore page
        draws. Returns (output (B, T, C), weights (B, heads, T, T))."""
        q, k, v = self._heads(x)
        weights = self._weights(q, k)
        return self._merge(weights @ v), weights


class MLP(nn.Module):
    """Per position: widen to mlp_width, GELU, project back."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.mlp_width, bias=False)
        self.proj = nn.Linear(config.mlp_width, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))   # (B, T, C) -> (B, T, mlp_width) -> (B, T, C)


class SwiGLU(nn.Module):
    """Llama's MLP (Shazeer 2020): two products of the input; one, through SiLU, gates the other elementwise, then
    project back. Three matrices instead of two, so mlp_width is 2/3 of GELU's to keep the parameters about equal."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, 2 * config.mlp_width, bias=False)   # gate and value in one product
        self.proj = nn.Linear(config.mlp_width, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.fc(x).chunk(2, dim=-1)                # (B, T, C) -> two (B, T, mlp_width)
        return self.dropout(self.proj(F.silu(gate) * value))    # -> (B, T, C)


class Block(nn.Module):
    """x + attention(norm(x)), then x + MLP(norm(x)): the residual stream carries the token through."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln2 = make_norm(config)
        self.mlp = MLP(config) if config.mlp == "gelu" else SwiGLU(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, weights = self.attn.forward_with_weights(self.ln1(x))
        x = x + a
        return x + self.mlp(self.ln2(x)), weights


class CuteLLM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        # Only learned positions have a table; RoPE puts position into each attention, "none" nowhere.
        self.pos_emb = nn.Embedding(config.block_size, config.d_model) if config.positions == "learned" else None
        self.emb_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = make_norm(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_weights:
            # Weight tying: reading a word and writing a word share one embedding table (fewer parameters, better
            # small-data generalisation).
            self.lm_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layers) so the residual stream's variance stays
        # put however deep the model is.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))
        # Training speed only: the same dropout with a cheaper mask draw (fast/dropout.py; no weights, same keys).
        use_fast_dropout(self)

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
        x = self.tok_emb(idx)                                    # (B, T) -> (B, T, C)
        if self.pos_emb is not None:
            # Positions past..past+T-1: a slice of the position table (same values and gradients as pos_emb(arange)).
            x = x + self.pos_emb.weight[past:past + T]
        return self.emb_dropout(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> (logits (B, T, vocab), mean cross-entropy loss or None).

        With `cache`, idx holds only the new tokens; their keys/values are appended to the cache.
        """
        x = self._embed(idx, cache.length if cache is not None else 0)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        logits = self.lm_head(self.ln_f(x))   # (B, T, C) -> (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def trace(self, idx: torch.Tensor) -> ModelTrace:
        """Forward pass that also returns every layer's attention weights and hidden states."""
        x = self._embed(idx, 0)
        hidden, attentions = [x], []
        for block in self.blocks:
            x, weights = block.forward_with_weights(x)
            hidden.append(x)
            attentions.append(weights)
        return ModelTrace(logits=self.logits_from_hidden(x), attentions=attentions, hidden_states=hidden)

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm + LM head applied to any hidden state (the "logit lens")."""
        return self.lm_head(self.ln_f(hidden))


@dataclass
class ModelTrace:
    """What happened inside one forward pass (batch of 1 or more), for inspection."""

    logits: torch.Tensor                 # (B, T, vocab)
    attentions: list[torch.Tensor]       # per layer: (B, heads, T, T), rows sum to 1
    hidden_states: list[torch.Tensor]    # embeddings, then the output of each block: n_layers + 1 of (B, T, d_model)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode (dropout off) and no autograd for the block; the model's previous mode comes back after."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


# Names that lived here before the speed paths moved to cutellm/fast/: asking for one says where (an ImportError: an
# AttributeError would turn `from cutellm.model import KVCache` into a bare "cannot import name").
MOVED = {"KVCache": "cutellm.fast.kv_cache", "Dropout": "cutellm.fast.dropout (as FastDropout)",
         **{name: "cutellm.fast.decode" for name in ("DecodeWeights", "BlockWeights", "VectorNorm", "DecodeViews")}}


def __getattr__(name: str):
    if name in MOVED:
        raise ImportError(f"cutellm.model.{name} moved to {MOVED[name]}: import it from there", name=__name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

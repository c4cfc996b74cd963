"""CuteLLM: a small decoder-only (GPT-style) transformer, in the spirit of nanoGPT's model.py.

token ids -> token embedding + learned position embedding -> N x [pre-LayerNorm causal self-attention, pre-LayerNorm
MLP] (each with a residual connection) -> final LayerNorm -> LM head (weights tied to the token embedding) -> logits.

Position t only ever attends to positions 0..t, so the logits at t depend on tokens 0..t alone.

The model comes first (attention, MLP, block, `CuteLLM.forward`). Below the "Inference extras" banner are the parts
that serve generation and the Explore page: a KV cache that makes generation cheap (a new token attends to stored
keys/values instead of recomputing the prefix), a flat one-token `decode_step`, and `trace()`, which returns every
layer's attention weights and hidden states.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig

LAYER_NORM_EPS = 1e-5   # nn.LayerNorm's default, named because decode_step's own LayerNorm needs it too


class Dropout(nn.Dropout):
    """nn.Dropout (zero each value with probability p, scale the rest by 1/(1-p)), with its mask drawn as one uniform
    number per value compared with p: on the CPU torch's own bernoulli draw costs ~1.5x as much, forward and
    backward together, and dropout runs five times a step (bench/README.md, "Speed, round two")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p   # float32 draws whatever x's dtype: p stays exact
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.causal = config.causal
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.resid_dropout = Dropout(config.dropout)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        # (B, T, 3C) -> three (B, heads, T, head_dim) views
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return q, k, v

    def _merge(self, y: torch.Tensor) -> torch.Tensor:
        B, _, T, _ = y.shape
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(B, T, -1)))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """The fast path (training, prefill): PyTorch's fused scaled_dot_product_attention."""
        q, k, v = self._heads(x)
        T = x.size(1)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(layer, k, v)
        # Query i (absolute position past + i) may see keys 0..past + i. One new query after a cache sees everything
        # stored, so it needs no mask; a fresh sequence uses SDPA's causal flag.
        mask = None
        if self.causal and T > 1 and past > 0:
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal and T > 1 and past == 0,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self._merge(y)

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same attention written out (softmax(q k^T / sqrt(d)) v), because SDPA never materialises the weights
        that the Explore page draws. Returns (output, weights of shape (B, heads, T, T))."""
        q, k, v = self._heads(x)
        T = x.size(1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        if self.causal:
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(diagonal=1)
            scores = scores.masked_fill(future, float("-inf"))
        weights = scores.softmax(dim=-1)
        return self._merge(weights @ v), weights


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.mlp_width, bias=False)
        self.proj = nn.Linear(config.mlp_width, config.d_model, bias=False)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model, eps=LAYER_NORM_EPS, bias=False)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model, eps=LAYER_NORM_EPS, bias=False)
        self.mlp = MLP(config)

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
        self.pos_emb = nn.Embedding(config.block_size, config.d_model)
        self.emb_dropout = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model, eps=LAYER_NORM_EPS, bias=False)
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
        return self.emb_dropout(self.tok_emb(idx) + self.pos_emb.weight[past:past + T])

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> (logits (B, T, vocab), mean cross-entropy loss or None).

        With `cache`, idx holds only the new tokens; their keys/values are appended to the cache.
        """
        x = self._embed(idx, cache.length if cache is not None else 0)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    # ===========================================================================================================
    # Inference extras: the KV cache and its one-token decode step, the traced forward pass, the logit lens
    # ===========================================================================================================

    def new_cache(self, batch_size: int = 1) -> KVCache:
        """An empty KV cache for `batch_size` sequences, on the model's device. The cache belongs to the weights
        that fill it, so this is also where decode_step's copy of them is brought up to date (once per cache,
        not once per token: the check reads every parameter's version)."""
        cache = KVCache(self.config, batch_size, self.tok_emb.weight)
        self._decode_layout = self._decode_weights() if cache.flat else None
        return cache

    def decode_step(self, token: int, cache: KVCache) -> torch.Tensor:
        """Logits (vocab,) for the next token after feeding one `token` to a cache of one sequence (eval mode,
        inside torch.inference_mode or no_grad).

        The same maths as forward() on one position. On the CPU it is written flat, in NumPy, over the cache's own
        memory: for one token every operation is a matrix-vector product or smaller, so a call's overhead costs
        more than its arithmetic, and a NumPy call costs about half of a torch one here (bench/README.md, round
        eight). The cache hands out ready-made views of its buffer and scratch space, so nothing is allocated but
        the logits. Elsewhere (a GPU, or weights that are not float32) it is forward() on the one token.
        `tests/test_model.py` checks both paths against forward().
        """
        if not cache.flat:
            cache.ensure_room(1)
            logits, _ = self(torch.tensor([[token]], device=cache.kv.device), cache=cache)
            return logits[0, -1]
        w = getattr(self, "_decode_layout", None) or self._decode_weights()
        pos = cache.length
        views = cache.next_token_views()   # ValueError when the cache is full
        x, tmp, norm = cache.vectors()
        np.add(w.tok_emb[token], w.pos_emb[pos], out=x)
        for b, (qkv, q, keys_t, values, scores, scores_t, probs, probs_t, y_heads, y, h, h_pairs) in zip(w.blocks,
                                                                                                         views):
            # The product lands in the cache: this token's key and value are stored by the same call (its query
            # comes out already scaled by 1/sqrt(head_dim), and LayerNorm's gain is folded into the weights).
            np.dot(b.qkv, norm(x), out=qkv)
            # The one query attends to every stored key (no mask needed): softmax(q K^T) V per head.
            np.matmul(q, keys_t, out=scores)
            torch.softmax(scores_t, dim=-1, out=probs_t)
            np.matmul(probs, values, out=y_heads)
            x += np.dot(b.proj, y, out=tmp)
            np.dot(b.fc, norm(x), out=h)
            # GELU (exact, as forward's) has no NumPy form; torch's runs in place on a transposed view of h, since
            # for a contiguous float vector torch hands GELU to oneDNN, whose per-call setup costs more than these
            # values (bench/README.md, round three).
            torch._C._nn.gelu_(h_pairs)
            x += np.dot(b.fc_proj, h, out=tmp)
        return torch.from_numpy(np.dot(w.head, norm(x)))

    def _decode_weights(self) -> DecodeWeights:
        """Every block's weights, the embeddings and the LM head as NumPy arrays for decode_step, made again
        whenever a parameter has changed (training steps, load_state_dict and .to() all do; the key sees each).

        Why copies: reaching a parameter through nn.Module attributes costs more than a product of this size, and
        the copies absorb two operations: each LayerNorm's gain is multiplied into the matrix that reads the
        normalised vector (W (g * n) = (W diag g) n), and the query rows of the qkv matrix take the attention's
        1/sqrt(head_dim). Each matrix is stored column-major (BLAS's matrix-vector kernel for that layout is a
        little faster here). They are rebuilt from the Parameters, never stale.
        """
        params = self._decode_params()
        key = tuple((p.data_ptr(), p._version) for p in params)
        if getattr(self, "_decode_key", None) != key:
            def matrix(weight: torch.Tensor, gain: torch.Tensor | None = None) -> np.ndarray:
                w = weight.detach() if gain is None else weight.detach() * gain.detach()
                return np.asfortranarray(w.numpy())

            blocks = []
            for b in self.blocks:
                qkv = matrix(b.attn.qkv.weight, b.ln1.weight)
                qkv[:self.config.d_model] *= self.config.head_dim ** -0.5
                blocks.append(BlockWeights(qkv=qkv, proj=matrix(b.attn.proj.weight),
                                           fc=matrix(b.mlp.fc.weight, b.ln2.weight),
                                           fc_proj=matrix(b.mlp.proj.weight)))
            # The embeddings are read by row, as they are (views of the Parameters).
            self._decode_cache = DecodeWeights(
                blocks=blocks, tok_emb=self.tok_emb.weight.detach().numpy(),
                pos_emb=self.pos_emb.weight.detach().numpy(), head=matrix(self.lm_head.weight, self.ln_f.weight))
            self._decode_key = key
        return self._decode_cache

    def _decode_params(self) -> list[torch.Tensor]:
        if getattr(self, "_decode_param_list", None) is None:
            self._decode_param_list = [t for b in self.blocks for t in (
                b.ln1.weight, b.attn.qkv.weight, b.attn.proj.weight, b.ln2.weight, b.mlp.fc.weight,
                b.mlp.proj.weight)] + [self.tok_emb.weight, self.pos_emb.weight, self.ln_f.weight]
        return self._decode_param_list

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
        """Final LayerNorm + LM head applied to any hidden state (the "logit lens")."""
        return self.lm_head(self.ln_f(hidden))


class BlockWeights(NamedTuple):
    """One block's weights, by name, for decode_step (LayerNorm gains and the query's scale folded in)."""

    qkv: np.ndarray
    proj: np.ndarray
    fc: np.ndarray
    fc_proj: np.ndarray


class DecodeWeights(NamedTuple):
    """What decode_step reads: per-block weights, the embeddings and the LM head (the final LayerNorm's gain folded
    in)."""

    blocks: list[BlockWeights]
    tok_emb: np.ndarray
    pos_emb: np.ndarray
    head: np.ndarray


class VectorNorm:
    """LayerNorm without its gain (folded into the next matrix by _decode_weights), for one vector, into a buffer it
    owns: the mean and the variance as two dot products (np.mean on 128 values costs several times a dot)."""

    def __init__(self, size: int, eps: float):
        self.out = np.empty(size, dtype=np.float32)
        self.mean_row = np.full(size, 1.0 / size, dtype=np.float32)
        self.inv_size, self.eps = 1.0 / size, eps

    def __call__(self, x: np.ndarray) -> np.ndarray:
        centred = np.subtract(x, x.dot(self.mean_row), out=self.out)
        centred *= 1.0 / math.sqrt(centred.dot(centred) * self.inv_size + self.eps)
        return centred


class DecodeViews(NamedTuple):
    """One layer's views for decode_step at one position of a cache: NumPy arrays over the cache's buffer and its
    scratch space, and torch twins (the same memory) where a torch kernel does the work."""

    qkv: np.ndarray          # this token's query, key and value slots, one vector of 3 x d_model
    q: np.ndarray            # the query as (heads, 1, head_dim)
    keys_t: np.ndarray       # every key so far as (heads, head_dim, tokens)
    values: np.ndarray       # every value so far as (heads, tokens, head_dim)
    scores: np.ndarray       # (heads, 1, tokens)
    scores_t: torch.Tensor
    probs: np.ndarray        # (heads, 1, tokens)
    probs_t: torch.Tensor
    y_heads: np.ndarray      # the attention's output as (heads, 1, head_dim) ...
    y: np.ndarray            # ... and as one vector
    h: np.ndarray            # the MLP's hidden vector ...
    h_pairs: torch.Tensor    # ... as a (2, n / 2) transposed view, where GELU runs in place


class KVCache:
    """Keys and values of the tokens read so far, for every layer, in one buffer of shape
    (layers, batch, block_size, 3, heads, head_dim) allocated once and filled up to `length`.

    Per token the buffer holds query, key and value side by side, in the order the attention's qkv product makes
    them, so decode_step's product writes a token's key and value straight into the cache (the query slot is its
    scratch space; the batched forward path stores keys and values only).
    Through `append` (the batched path) every layer stores the same new tokens, and they count once the last layer
    has stored them; `next_token_views` counts its one token at once, for all layers.
    """

    def __init__(self, config: ModelConfig, batch_size: int, like: torch.Tensor):
        self.block_size, self.n_layers, self.mlp_width = config.block_size, config.n_layers, config.mlp_width
        self.eps = LAYER_NORM_EPS
        self.kv = like.new_zeros((config.n_layers, batch_size, config.block_size, 3, config.n_heads,
                                  config.head_dim))
        self.length = 0
        self._views: list[list[DecodeViews] | None] | None = None   # decode_step's, per position
        self._scratch: list[tuple[np.ndarray, ...]] | None = None   # decode_step's, per layer
        self._vectors: tuple[np.ndarray, np.ndarray, VectorNorm] | None = None

    @property
    def flat(self) -> bool:
        """Whether decode_step's NumPy path can work on this cache's memory (CPU, float32)."""
        return self.kv.device.type == "cpu" and self.kv.dtype == torch.float32

    def ensure_room(self, new: int) -> None:
        if self.length + new > self.block_size:
            raise ValueError(f"the cache is full ({self.block_size} tokens); re-read a shorter window first")

    def _grow(self, layer: int, new: int) -> tuple[int, int]:
        self.ensure_room(new)
        start, end = self.length, self.length + new
        if layer == self.n_layers - 1:
            self.length = end
        return start, end

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store `layer`'s keys/values (batch, heads, new tokens, head_dim) after the stored ones; return all of
        that layer's keys and values so far, as (batch, heads, tokens, head_dim) views of the buffer."""
        start, end = self._grow(layer, k.size(2))
        kv = self.kv[layer]
        kv[:, start:end, 1] = k.transpose(1, 2)
        kv[:, start:end, 2] = v.transpose(1, 2)
        return kv[:, :end, 1].transpose(1, 2), kv[:, :end, 2].transpose(1, 2)

    def next_token_views(self) -> list[DecodeViews]:
        """For decode_step, one new token of sequence 0, which this call counts as stored: each layer's views
        (DecodeViews), made once per position of a cache, when it is first reached."""
        self.ensure_room(1)
        if self._views is None:
            self._views = [None] * self.block_size   # a short generation reaches only a few positions
        p = self.length
        views = self._views[p]
        if views is None:
            if self._scratch is None:
                self._scratch = [self._decode_scratch() for _ in range(self.n_layers)]
            views = self._views[p] = [self._layer_views(kv, p, *scratch)
                                      for kv, scratch in zip(self.kv[:, 0].numpy(), self._scratch)]
        self.length += 1
        return views

    @staticmethod
    def _layer_views(kv: np.ndarray, p: int, scores: np.ndarray, probs: np.ndarray, y_heads: np.ndarray,
                     h: np.ndarray) -> DecodeViews:
        heads, head_dim = kv.shape[-2:]
        # The first heads x (p + 1) values of the flat score buffers, so each view is contiguous.
        s, pr = scores[:heads * (p + 1)].reshape(heads, 1, p + 1), probs[:heads * (p + 1)].reshape(heads, 1, p + 1)
        return DecodeViews(qkv=kv[p].reshape(-1), q=kv[p, 0].reshape(heads, 1, head_dim),
                           keys_t=kv[:p + 1, 1].transpose(1, 2, 0), values=kv[:p + 1, 2].transpose(1, 0, 2),
                           scores=s, scores_t=torch.from_numpy(s), probs=pr, probs_t=torch.from_numpy(pr),
                           y_heads=y_heads, y=y_heads.reshape(-1), h=h,
                           h_pairs=torch.from_numpy(h).view(-1, 2).t())

    def _decode_scratch(self) -> tuple[np.ndarray, ...]:
        """One layer's working memory for decode_step, allocated once per cache: the attention's scores and
        probabilities (room for every position), its output as (heads, 1, head_dim), the MLP's hidden vector."""
        heads, head_dim = self.kv.shape[-2:]
        return (np.zeros(heads * self.block_size, np.float32), np.zeros(heads * self.block_size, np.float32),
                np.zeros((heads, 1, head_dim), np.float32), np.zeros(self.mlp_width, np.float32))

    def vectors(self) -> tuple[np.ndarray, np.ndarray, VectorNorm]:
        """decode_step's residual stream, a vector of d_model for one product's result, and its LayerNorm."""
        if self._vectors is None:
            d_model = self.kv.shape[-2] * self.kv.shape[-1]
            self._vectors = (np.zeros(d_model, np.float32), np.zeros(d_model, np.float32),
                             VectorNorm(d_model, self.eps))
        return self._vectors

    def clear(self) -> None:
        """Forget every stored token (the buffer is reused)."""
        self.length = 0

    def repeat(self, batch_size: int, room: int | None = None) -> "KVCache":
        """A cache of `batch_size` sequences that all start with this cache's first sequence (e.g. one sentence's
        shared beginning, read once, then continued in many ways), with room for `room` more tokens each (default:
        up to the block size). Only the room asked for is allocated: for a thousand continuations of a few tokens,
        a block-sized buffer would be mostly zeros written for nothing."""
        capacity = self.block_size if room is None else self.length + room
        if capacity > self.block_size:
            raise ValueError(f"room for {room} more tokens after {self.length} exceeds the block size "
                             f"({self.block_size})")
        copy = KVCache.__new__(KVCache)
        copy.block_size, copy.n_layers, copy.mlp_width, copy.eps = capacity, self.n_layers, self.mlp_width, self.eps
        copy.length, copy._views, copy._scratch, copy._vectors = self.length, None, None, None
        shape = list(self.kv.shape)
        shape[1], shape[2] = batch_size, capacity
        copy.kv = self.kv.new_zeros(shape)
        copy.kv[:, :, :self.length] = self.kv[:, :1, :self.length]
        return copy


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

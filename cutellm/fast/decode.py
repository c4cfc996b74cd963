"""The one-token decode step, written flat in NumPy: for one token every operation is a matrix-vector product or
smaller, so a call's overhead costs more than its arithmetic, and a NumPy call costs about half a torch one here
(bench/README.md, round eight). tests/test_fast.py pins it to the model's forward().

    decoder = Decoder(model, cache)           # after the prompt has been read into `cache` by forward()
    logits = decoder.step(token)              # (vocab,) for the token after `token`; the cache grows by one

It runs for a cache of one sequence on the CPU in float32, for GPT-2's block (learned positions, LayerNorm, GELU:
`ModelConfig.is_gpt2_block`); anywhere else (a GPU, other dtypes, RoPE, RMSNorm or SwiGLU) `step` is forward() on
the one token, which the KV cache makes cheap too. Eval mode, inside torch.inference_mode or no_grad.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from .kv_cache import KVCache

if TYPE_CHECKING:
    from ..model import CuteLLM


class BlockWeights(NamedTuple):
    """One block's weights, by name (LayerNorm gains and the query's scale folded in)."""

    qkv: np.ndarray
    proj: np.ndarray
    fc: np.ndarray
    fc_proj: np.ndarray


class DecodeWeights(NamedTuple):
    """What the step reads: per-block weights, the embeddings and the LM head (the final LayerNorm's gain folded
    in)."""

    blocks: list[BlockWeights]
    tok_emb: np.ndarray
    pos_emb: np.ndarray
    head: np.ndarray


# model -> (its parameters in a fixed order, their (address, version) key, the copies made from them)
_copies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decode_weights(model: CuteLLM) -> DecodeWeights:
    """The model's weights as NumPy arrays, made again whenever a parameter has changed (training steps,
    load_state_dict and .to() all do; the (address, version) key sees each).

    Why copies: reaching a parameter through nn.Module attributes costs more than a product of this size, and the
    copies absorb two operations: each LayerNorm's gain is multiplied into the matrix that reads the normalised
    vector (W (g * n) = (W diag g) n), and the query rows of the qkv matrix take the attention's 1/sqrt(head_dim).
    Each matrix is stored column-major (BLAS's matrix-vector kernel for that layout is a little faster here).
    """
    entry = _copies.get(model)
    params = entry[0] if entry else [t for b in model.blocks for t in (
        b.ln1.weight, b.attn.qkv.weight, b.attn.proj.weight, b.ln2.weight, b.mlp.fc.weight, b.mlp.proj.weight)
    ] + [model.tok_emb.weight, model.pos_emb.weight, model.ln_f.weight]
    key = tuple((p.data_ptr(), p._version) for p in params)
    if entry and entry[1] == key:
        return entry[2]

    def matrix(weight: torch.Tensor, gain: torch.Tensor | None = None) -> np.ndarray:
        w = weight.detach() if gain is None else weight.detach() * gain.detach()
        return np.asfortranarray(w.numpy())

    d_model, head_dim = model.config.d_model, model.config.head_dim
    blocks = []
    for b in model.blocks:
        qkv = matrix(b.attn.qkv.weight, b.ln1.weight)
        qkv[:d_model] *= head_dim ** -0.5
        blocks.append(BlockWeights(qkv=qkv, proj=matrix(b.attn.proj.weight), fc=matrix(b.mlp.fc.weight, b.ln2.weight),
                                   fc_proj=matrix(b.mlp.proj.weight)))
    # The embeddings are read by row, as they are (views of the Parameters).
    weights = DecodeWeights(blocks=blocks, tok_emb=model.tok_emb.weight.detach().numpy(),
                            pos_emb=model.pos_emb.weight.detach().numpy(),
                            head=matrix(model.lm_head.weight, model.ln_f.weight))
    _copies[model] = (params, key, weights)
    return weights


class VectorNorm:
    """LayerNorm without its gain (folded into the next matrix), for one vector, into a buffer it owns: the mean and
    the variance as two dot products (np.mean on 128 values costs several times a dot)."""

    def __init__(self, size: int, eps: float):
        self.out = np.empty(size, dtype=np.float32)
        self.mean_row = np.full(size, 1.0 / size, dtype=np.float32)
        self.inv_size, self.eps = 1.0 / size, eps

    def __call__(self, x: np.ndarray) -> np.ndarray:
        centred = np.subtract(x, x.dot(self.mean_row), out=self.out)
        centred *= 1.0 / math.sqrt(centred.dot(centred) * self.inv_size + self.eps)
        return centred


class DecodeViews(NamedTuple):
    """One layer's views at one position of the cache: NumPy arrays over the cache's buffer and the decoder's
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


def _layer_views(kv: np.ndarray, p: int, scores: np.ndarray, probs: np.ndarray, y_heads: np.ndarray,
                 h: np.ndarray) -> DecodeViews:
    heads, head_dim = kv.shape[-2:]
    # The first heads x (p + 1) values of the flat score buffers, so each view is contiguous.
    s, pr = scores[:heads * (p + 1)].reshape(heads, 1, p + 1), probs[:heads * (p + 1)].reshape(heads, 1, p + 1)
    return DecodeViews(qkv=kv[p].reshape(-1), q=kv[p, 0].reshape(heads, 1, head_dim),
                       keys_t=kv[:p + 1, 1].transpose(1, 2, 0), values=kv[:p + 1, 2].transpose(1, 0, 2),
                       scores=s, scores_t=torch.from_numpy(s), probs=pr, probs_t=torch.from_numpy(pr),
                       y_heads=y_heads, y=y_heads.reshape(-1), h=h, h_pairs=torch.from_numpy(h).view(-1, 2).t())


class Decoder:
    """One-token steps for one (model, cache) pair, sequence 0 of the cache. Build it once the weights are set
    (after training or loading): the weights' NumPy copies are brought up to date here, once per decoder, not once
    per token (the check reads every parameter's version)."""

    def __init__(self, model: CuteLLM, cache: KVCache):
        self.model, self.cache = model, cache
        kv = cache.kv
        # Whether the NumPy path can work on the cache's memory.
        self.flat = kv.device.type == "cpu" and kv.dtype == torch.float32 and model.config.is_gpt2_block
        if not self.flat:
            return
        self.weights = decode_weights(model)
        heads, head_dim = kv.shape[-2:]
        d_model, capacity = heads * head_dim, cache.capacity
        self._layers = kv[:, 0].numpy()   # per layer (capacity, 3, heads, head_dim), the cache's own memory
        # Working memory, allocated once: per layer the attention's scores and probabilities (room for every
        # position), its output as (heads, 1, head_dim), the MLP's hidden vector.
        self._scratch = [(np.zeros(heads * capacity, np.float32), np.zeros(heads * capacity, np.float32),
                          np.zeros((heads, 1, head_dim), np.float32), np.zeros(model.config.mlp_width, np.float32))
                         for _ in range(kv.size(0))]
        self._views: list[list[DecodeViews] | None] = [None] * capacity   # made when a position is first reached
        # The residual stream, a vector for one product's result, and LayerNorm.
        self._x, self._tmp = np.zeros(d_model, np.float32), np.zeros(d_model, np.float32)
        self._norm = VectorNorm(d_model, model.ln_f.eps)

    def _next_token_views(self) -> list[DecodeViews]:
        """Each layer's views for the next position, which this call counts as stored in the cache."""
        cache = self.cache
        cache.ensure_room(1)
        p = cache.length
        views = self._views[p]
        if views is None:
            views = self._views[p] = [_layer_views(kv, p, *scratch) for kv, scratch in zip(self._layers,
                                                                                            self._scratch)]
        cache.length += 1   # every layer's query, key and value are written below
        return views

    def step(self, token: int) -> torch.Tensor:
        """Logits (vocab,) for the token after `token`, which is stored in the cache (ValueError when it is full).
        The same maths as forward() on one position."""
        if not self.flat:
            self.cache.ensure_room(1)
            logits, _ = self.model(torch.tensor([[token]], device=self.cache.kv.device), cache=self.cache)
            return logits[0, -1]
        w, x, tmp, norm = self.weights, self._x, self._tmp, self._norm
        pos = self.cache.length
        views = self._next_token_views()
        np.add(w.tok_emb[token], w.pos_emb[pos], out=x)
        for b, (qkv, q, keys_t, values, scores, scores_t, probs, probs_t, y_heads, y, h, h_pairs) in zip(w.blocks,
                                                                                                         views):
            # The product lands in the cache: this token's key and value are stored by the same call (its query
            # comes out already scaled by 1/sqrt(head_dim), and LayerNorm's gain is folded into the weights).
            np.dot(b.qkv, norm(x), out=qkv)
            # The one query attends to every stored key (no mask needed): softmax(q K^T) V per head.
            np.matmul(q, keys_t, out=scores)                       # (heads, 1, hd) @ (heads, hd, T) -> (heads, 1, T)
            torch.softmax(scores_t, dim=-1, out=probs_t)
            np.matmul(probs, values, out=y_heads)                  # (heads, 1, T) @ (heads, T, hd) -> (heads, 1, hd)
            x += np.dot(b.proj, y, out=tmp)
            np.dot(b.fc, norm(x), out=h)
            # GELU (exact, as forward's) has no NumPy form. torch's private in-place kernel, on a transposed view of
            # h: for a contiguous float vector torch hands GELU to oneDNN, whose per-call setup costs more than
            # these values, and F.gelu would allocate (bench/README.md, round three).
            torch._C._nn.gelu_(h_pairs)
            x += np.dot(b.fc_proj, h, out=tmp)
        return torch.from_numpy(np.dot(w.head, norm(x)))

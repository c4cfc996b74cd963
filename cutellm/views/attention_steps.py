"""Attention, derived: one head's weights for one token, computed step by step with the model's real numbers.

The attention map shows *what* a token looks at; this shows *why*. For the token at `position`, in one head of one
layer:

1. its **query** q: the layer's input (after the block's norm) times the query matrix, one head's slice of it;
2. every visible token's **key** k_j (RoPE, when the model uses it, rotates both by their positions first);
3. the **dot products** q · k_j: how well each key matches the query;
4. divided by **sqrt(head size)**, so that the scores do not grow with the head's width;
5. the **future masked**: a causal model gives every later token a score of minus infinity;
6. the **softmax**: e^score / the sum of them, so the weights are positive and add up to 1;
7. the **weighted sum of the values** v_j: what this head hands on for this token.

Every head does the same at once; their outputs, side by side, go through the output projection into the residual
stream. `derive_attention` returns each step as data; tests/test_attention_steps.py checks that its weights equal the
model's own attention (`CuteLLM.trace`) and that the heads' outputs, projected, equal the attention block's output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch

from ..errors import ConfigError
from ..inference import encode_context
from ..model import CuteLLM, evaluating
from ..tokenizer import Tokenizer


@dataclass(frozen=True)
class AttentionSteps:
    tokens: list[str]              # the text's tokens as the model reads them
    layer: int                     # 0-based
    head: int                      # 0-based
    position: int                  # the token whose query this is (0-based)
    causal: bool
    rotary: bool                   # queries and keys were rotated by position (RoPE)
    query: torch.Tensor            # (head_dim,)
    keys: torch.Tensor             # (visible, head_dim): tokens 0..position (every token when not causal)
    values: torch.Tensor           # (visible, head_dim)
    dots: torch.Tensor             # (visible,) q · k_j
    scores: torch.Tensor           # (visible,) q · k_j / sqrt(head_dim)
    weights: torch.Tensor          # (visible,) softmax(scores): positive, adding up to 1
    output: torch.Tensor           # (head_dim,) sum_j weights_j v_j
    attention_output: torch.Tensor  # (d_model,) every head's output joined, through the output projection

    @property
    def head_dim(self) -> int:
        return self.query.numel()

    @property
    def masked(self) -> int:
        """Tokens after `position` that a causal model may not look at (score -inf, weight 0)."""
        return len(self.tokens) - len(self.weights)

    def to_frame(self) -> pd.DataFrame:
        """One row per token of the text: its dot product, scaled score and weight (masked ones marked)."""
        rows = [{"position": j, "token": t, "q·k": float(self.dots[j]), "÷ √d": float(self.scores[j]),
                 "weight": float(self.weights[j])} for j, t in enumerate(self.tokens[:len(self.weights)])]
        rows += [{"position": j, "token": t, "q·k": math.nan, "÷ √d": -math.inf, "weight": 0.0}
                 for j, t in enumerate(self.tokens) if j >= len(self.weights)]
        return pd.DataFrame(rows)


def derive_attention(model: CuteLLM, tokenizer: Tokenizer, text: str, layer: int, head: int,
                     position: int | None = None) -> AttentionSteps:
    """Attention step by step for the token at `position` (default: the last) in `head` of `layer` (0-based)."""
    cfg = model.config
    if not 0 <= layer < cfg.n_layers:
        raise ConfigError(f"layer must be 1-{cfg.n_layers}, got {layer + 1}")
    if not 0 <= head < cfg.n_heads:
        raise ConfigError(f"head must be 1-{cfg.n_heads}, got {head + 1}")
    ids = encode_context(model, tokenizer, text)
    T = len(ids)
    position = T - 1 if position is None else position
    if not 0 <= position < T:
        raise ConfigError(f"position must be 0-{T - 1} (the text has {T} tokens), got {position}")
    block = model.blocks[layer]
    attn = block.attn
    with evaluating(model):
        x = model.trace(torch.tensor([ids], device=model.device)).hidden_states[layer]   # (1, T, C): the layer's input
        q, k, v = attn._heads(block.ln1(x))                    # three (1, heads, T, head_dim), RoPE applied
        visible = position + 1 if cfg.causal else T            # 5. the future is masked: later keys are not scored
        outputs = []
        for h in range(cfg.n_heads):
            query, keys, values = q[0, h, position], k[0, h, :visible], v[0, h, :visible]
            dots = keys @ query                                # 3. (visible,)
            scores = dots / math.sqrt(cfg.head_dim)            # 4.
            weights = scores.softmax(dim=-1)                   # 6. (visible,), adds up to 1
            output = weights @ values                          # 7. (head_dim,)
            outputs.append(output)
            if h == head:
                steps = dict(query=query, keys=keys, values=values, dots=dots, scores=scores, weights=weights,
                             output=output)
        attention_output = attn.proj(torch.cat(outputs))       # (heads * head_dim = C,) -> (C,)
    return AttentionSteps(tokens=[tokenizer.token(i) for i in ids], layer=layer, head=head, position=position,
                          causal=cfg.causal, rotary=attn.rotary is not None,
                          **{name: t.detach().cpu() for name, t in steps.items()},
                          attention_output=attention_output.detach().cpu())

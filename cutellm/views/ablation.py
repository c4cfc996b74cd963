"""Switching parts off: what the model loses without one attention head, one layer's attention or one layer's MLP.

The idea (an *ablation*): run the same text through the model twice, once intact and once with a part's output set
to zero, and compare. If the loss on the text rises a lot, the part mattered for this text; if it barely moves, the
model manages without it. Doing it for every head in turn gives a *head importance table*: the few heads that matter.

How a part is switched off, without touching a weight:

- a head: the attention's output projection (`block.attn.proj`) reads the heads side by side, head h in columns
  h * head_dim .. (h + 1) * head_dim. A forward pre-hook multiplies those columns of its input by 0, so the head
  adds nothing to the residual stream. The projection has no bias, so every head off == the layer's attention off.
- a layer's MLP: a forward hook multiplies the MLP's output by 0; the token passes the block on the residual alone.

Each row of a batch carries its own switches (`switched_off`), so the whole head table is one forward pass: the text
repeated once per part (chunked when that batch would be large). The hooks act only in the thread that made them
(the app shares a loaded model between sessions, each in its own thread) and are removed in a `finally`, also when
an exception interrupts the pass: after any function here the model is the intact model again (tests check it).
They act on the modules' forward, so they show in `model(...)` and `model.trace(...)`; the cached NumPy decode
step of generation (cutellm/fast/decode.py) reads the weights directly and would not see them.

- `Part`: what to switch off (kind "head" | "attention" | "mlp", 0-based layer and head; `label` is 1-based).
- `switched_off(model, parts_per_row)`: the context manager, one collection of parts per batch row.
- `ablation_effect`: loss on the text and the next-token probabilities at one position, before and after.
- `head_importance`: the loss increase when each head alone (and each layer's attention, each MLP) is off, on a
  text or on a sample of validation windows (`sample_windows`).

A text is encoded like a prompt (`inference.encode_context`: PromptError for empty text or no known word) and cropped
to its last `block_size` tokens. The loss is the mean cross-entropy of predicting tokens 1..T-1 of the text (nats per
token), so it needs at least two tokens. The model runs in eval mode without gradients; nothing here is random.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..errors import ConfigError, PromptError
from ..inference import encode_context
from ..model import CuteLLM, evaluating
from ..tokenizer import Tokenizer

KINDS = ("head", "attention", "mlp")
TOP_K = 5
# Largest batch of logits one forward pass of the head table may produce (rows x tokens x vocabulary, float32: 64 MB).
MAX_LOGITS = 2 ** 24
VALIDATION_WINDOWS = 64


# ---------------------------------------------------------------------------------------------------------------
# What to switch off


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Part:
    """One part of the model to switch off. `layer` and `head` count from 0, like the model's lists; `label` counts
    from 1, like the pages ("layer 1 head 2")."""

    kind: str                 # "head" | "attention" (every head of the layer) | "mlp"
    layer: int                # 0-based block index
    head: int | None = None   # 0-based head index, for kind "head" only

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"what to switch off: must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not _whole(self.layer):
            raise ConfigError(f"layer: must be a whole number, got {self.layer!r}")
        if self.kind == "head" and not _whole(self.head):
            raise ConfigError(f"head: switching off a head needs its number, got {self.head!r}")
        if self.kind != "head" and self.head is not None:
            raise ConfigError(f"head: a layer's {self.kind} is switched off whole; leave the head out "
                              f"(got head {self.head!r})")

    @property
    def label(self) -> str:
        what = {"head": f"head {(self.head or 0) + 1}", "attention": "attention", "mlp": "MLP"}[self.kind]
        return f"layer {self.layer + 1} {what}"


def check_part(model: CuteLLM, part: Part) -> None:
    """ConfigError naming the valid range when `part` is not in `model` ("head 5 does not exist: layer 1 has heads
    1-4")."""
    cfg = model.config
    if not 0 <= part.layer < cfg.n_layers:
        raise ConfigError(f"layer {part.layer + 1} does not exist: the model has layers 1-{cfg.n_layers}")
    if part.kind == "head" and not 0 <= part.head < cfg.n_heads:
        raise ConfigError(f"head {part.head + 1} does not exist: layer {part.layer + 1} has heads 1-{cfg.n_heads}")


def all_parts(model: CuteLLM, kinds: Sequence[str] = KINDS) -> list[Part]:
    """Every part of `model` of the given kinds, layer by layer: its heads, then its attention, then its MLP."""
    cfg = model.config
    parts = []
    for layer in range(cfg.n_layers):
        if "head" in kinds:
            parts += [Part("head", layer, h) for h in range(cfg.n_heads)]
        parts += [Part(kind, layer) for kind in ("attention", "mlp") if kind in kinds]
    return parts


def _rows(parts_per_row: Sequence[Part | Iterable[Part]]) -> list[tuple[Part, ...]]:
    rows = [(row,) if isinstance(row, Part) else tuple(row) for row in parts_per_row]
    for row in rows:
        for part in row:
            if not isinstance(part, Part):
                raise ConfigError(f"what to switch off: expected a Part, got {part!r}")
    return rows


# ---------------------------------------------------------------------------------------------------------------
# The switches


def _gated(gate: torch.Tensor, owner: int):
    """x -> x * gate, in the thread `owner` only; gate (rows, 1, C or 1) holds one row per batch row (or 1 for all)."""
    def scale(x: torch.Tensor) -> torch.Tensor | None:
        if threading.get_ident() != owner:   # another session's pass through a shared model: leave it intact
            return None
        if gate.size(0) not in (1, x.size(0)):
            raise ValueError(f"switched_off was given {gate.size(0)} rows of switches for a batch of {x.size(0)}")
        return x * gate.to(dtype=x.dtype)
    return scale


@contextmanager
def switched_off(model: CuteLLM, parts_per_row: Sequence[Part | Iterable[Part]]) -> Iterator[None]:
    """Inside the block, batch row r of the model's forward passes runs with the parts `parts_per_row[r]` switched
    off (a Part or a collection of Parts; empty: intact). One row applies to every row of any batch. The weights are
    never touched; the hooks are removed on leaving, also on an exception. ConfigError for a part not in the model."""
    rows = _rows(parts_per_row)
    if not rows:
        raise ConfigError("what to switch off: give one collection of parts per batch row (at least one row)")
    cfg, n = model.config, len(rows)
    heads = torch.ones(n, cfg.n_layers, cfg.n_heads)
    mlps = torch.ones(n, cfg.n_layers)
    for r, row in enumerate(rows):
        for part in row:
            check_part(model, part)
            if part.kind == "head":
                heads[r, part.layer, part.head] = 0.0
            elif part.kind == "attention":
                heads[r, part.layer] = 0.0
            else:
                mlps[r, part.layer] = 0.0
    owner, device = threading.get_ident(), model.device
    handles = []
    try:
        for layer, block in enumerate(model.blocks):
            if bool((heads[:, layer] != 1).any()):
                # (rows, heads) -> (rows, 1, heads * head_dim): each head's gate repeated over its columns.
                gate = heads[:, layer].repeat_interleave(cfg.head_dim, dim=1)[:, None, :].to(device)
                scale = _gated(gate, owner)
                handles.append(block.attn.proj.register_forward_pre_hook(
                    lambda _module, args, scale=scale: None if (x := scale(args[0])) is None else (x, *args[1:])))
            if bool((mlps[:, layer] != 1).any()):
                scale = _gated(mlps[:, layer].view(n, 1, 1).to(device), owner)
                handles.append(block.mlp.register_forward_hook(
                    lambda _module, _args, output, scale=scale: scale(output)))
        yield
    finally:
        for handle in handles:
            handle.remove()


# ---------------------------------------------------------------------------------------------------------------
# Running the model with switches


def _text_ids(model: CuteLLM, tokenizer: Tokenizer, text: str) -> list[int]:
    ids = encode_context(model, tokenizer, text)
    if len(ids) < 2:
        raise PromptError(f"the text is {len(ids)} token: the loss needs at least two (one word to read, the next "
                          "to predict)")
    return ids


def _row_losses(model: CuteLLM, windows: torch.Tensor, rows: list[tuple[Part, ...]]) -> np.ndarray:
    """losses[r, w]: mean cross-entropy of window w (ids (W, T + 1): read 0..T-1, predict 1..T) with the parts of
    row r switched off. One batch holds every (row, window) pair, split into chunks of at most MAX_LOGITS logits."""
    windows = windows.to(model.device)
    n_windows, width = windows.shape
    inputs, targets = windows[:, :-1], windows[:, 1:]
    per_chunk = max(1, MAX_LOGITS // ((width - 1) * model.config.vocab_size))   # rows per forward pass
    pairs = [(r, w) for r in range(len(rows)) for w in range(n_windows)]
    out = np.empty((len(rows), n_windows))
    with evaluating(model):
        for start in range(0, len(pairs), per_chunk):
            chunk = pairs[start:start + per_chunk]
            index = torch.tensor([w for _, w in chunk], device=model.device)
            with switched_off(model, [rows[r] for r, _ in chunk]):
                logits, _ = model(inputs[index])
            loss = F.cross_entropy(logits.double().transpose(1, 2), targets[index], reduction="none").mean(dim=1)
            for (r, w), value in zip(chunk, loss.cpu().tolist()):
                out[r, w] = value
    return out


# ---------------------------------------------------------------------------------------------------------------
# One part: before and after


@dataclass(frozen=True, eq=False)
class AblationEffect:
    """What switching `part` off changes on a text: the loss, and the next-token guess at `position`.

    `candidates` has one row per candidate next token, the intact model's top-k then any new ones from the top-k
    without the part: candidate, candidate_id, prob_before, prob_after, change (after - before), rank_before,
    rank_after (1 = most likely), is_actual_next (the token that really follows `position` in the text).
    """

    part: Part
    tokens: tuple[str, ...]            # the tokens the model reads
    position: int                      # 0-based: the guess made after reading tokens 0..position
    loss_before: float                 # mean cross-entropy on the text (nats per token), intact
    loss_after: float                  # the same with the part switched off
    predicted_before: str              # the most likely next token at `position`, intact
    predicted_after: str
    actual_next: str | None            # the token after `position` in the text (None at the last position)
    probs_before: np.ndarray           # (vocab,) float64: the whole next-token distribution at `position`
    probs_after: np.ndarray
    candidates: pd.DataFrame

    @property
    def loss_increase(self) -> float:
        return self.loss_after - self.loss_before

    @property
    def input_token(self) -> str:
        return self.tokens[self.position]

    @property
    def prediction_changed(self) -> bool:
        return self.predicted_before != self.predicted_after


def _ranks(probs: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(probs), dtype=np.int64)
    ranks[np.argsort(-probs, kind="stable")] = np.arange(1, len(probs) + 1)
    return ranks


def _candidates(tokenizer: Tokenizer, before: np.ndarray, after: np.ndarray, actual: int | None,
                top_k: int) -> pd.DataFrame:
    ids = [int(i) for i in np.argsort(-before, kind="stable")[:top_k]]
    ids += [int(i) for i in np.argsort(-after, kind="stable")[:top_k] if int(i) not in ids]
    rank_b, rank_a = _ranks(before), _ranks(after)
    return pd.DataFrame([{"candidate": tokenizer.token(i), "candidate_id": i, "prob_before": float(before[i]),
                          "prob_after": float(after[i]), "change": float(after[i] - before[i]),
                          "rank_before": int(rank_b[i]), "rank_after": int(rank_a[i]), "is_actual_next": i == actual}
                         for i in ids],
                        columns=["candidate", "candidate_id", "prob_before", "prob_after", "change", "rank_before",
                                 "rank_after", "is_actual_next"])


def ablation_effect(model: CuteLLM, tokenizer: Tokenizer, text: str, part: Part, position: int | None = None,
                    top_k: int = TOP_K) -> AblationEffect:
    """The text through the intact model and through the model without `part`, in one batch of two rows.

    `position` (0-based, default: the last token, i.e. the guess for the word after the text) picks where the
    next-token probabilities are compared. PromptError for a text under two tokens or a position outside it;
    ConfigError for a part not in the model.
    """
    check_part(model, part)
    if not _whole(top_k) or top_k < 1:
        raise ConfigError(f"top_k: must be a whole number of at least 1, got {top_k!r}")
    ids = _text_ids(model, tokenizer, text)
    last = len(ids) - 1
    position = last if position is None else position
    if not _whole(position) or not 0 <= position <= last:
        raise PromptError(f"position {position} is not in the text: it has {len(ids)} tokens, positions 0-{last}")
    batch = torch.tensor([ids, ids], dtype=torch.long, device=model.device)
    with evaluating(model), switched_off(model, [(), (part,)]):
        logits, _ = model(batch)
    logits = logits.double()
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), batch[:, 1:], reduction="none").mean(dim=1)
    probs = torch.softmax(logits[:, position], dim=-1).cpu().numpy()
    actual = ids[position + 1] if position < last else None
    return AblationEffect(
        part=part, tokens=tuple(tokenizer.token(i) for i in ids), position=position,
        loss_before=float(losses[0]), loss_after=float(losses[1]),
        predicted_before=tokenizer.token(int(probs[0].argmax())), predicted_after=tokenizer.token(int(probs[1].argmax())),
        actual_next=tokenizer.token(actual) if actual is not None else None, probs_before=probs[0],
        probs_after=probs[1], candidates=_candidates(tokenizer, probs[0], probs[1], actual, min(top_k, len(probs[0]))))


# ---------------------------------------------------------------------------------------------------------------
# Every part: the head importance table

IMPORTANCE_COLUMNS = ["part", "kind", "layer", "head", "loss_before", "loss_after", "increase"]


def sample_windows(windows: torch.Tensor, n: int = VALIDATION_WINDOWS) -> torch.Tensor:
    """`n` windows spread evenly over `windows` (e.g. `Dataset.val`, (N, block_size + 1)): the first, the last and
    evenly spaced ones between; all of them when there are no more than `n`."""
    if not _whole(n) or n < 1:
        raise ConfigError(f"n: must be a whole number of at least 1, got {n!r}")
    if windows.size(0) <= n:
        return windows
    return windows[torch.linspace(0, windows.size(0) - 1, n).round().long()]


def _check_windows(model: CuteLLM, windows) -> torch.Tensor:
    windows = torch.as_tensor(windows, dtype=torch.long)
    if windows.dim() != 2 or windows.size(0) == 0 or windows.size(1) < 2:
        raise ConfigError("windows: need at least one window of two or more token ids, as a (windows, length) "
                          f"table; got shape {tuple(windows.shape)}")
    if windows.size(1) > model.config.block_size + 1:
        raise ConfigError(f"windows: {windows.size(1)} tokens is longer than the model reads plus one "
                          f"({model.config.block_size + 1})")
    if bool((windows < 0).any()) or bool((windows >= model.config.vocab_size).any()):
        raise ConfigError(f"windows: token ids must be between 0 and {model.config.vocab_size - 1}")
    return windows


def head_importance(model: CuteLLM, tokenizer: Tokenizer, text: str | None = None, *, windows=None,
                    kinds: Sequence[str] = KINDS) -> pd.DataFrame:
    """The loss without each part alone, against the intact loss: which heads (and layers' attention, MLPs) matter.

    Measured on `text` or on `windows` (token-id windows (N, length <= block_size + 1), e.g. `sample_windows(
    dataset.val)`), exactly one of them. Every part and the intact model run in one batched pass (chunked when
    large). One row per part in `all_parts` order: part (its label), kind, layer and head (1-based, as people count;
    head is <NA> for a whole layer's attention or MLP), loss_before, loss_after, increase (after - before; negative:
    the model did better without it). `frame.attrs`: measured_on ("text" or "windows"), windows, tokens (how many
    predictions each loss averages).
    """
    if (text is None) == (windows is None):
        raise ConfigError("head importance: measure on a text or on windows of token ids (exactly one of them)")
    if windows is None:
        data = torch.tensor([_text_ids(model, tokenizer, text)], dtype=torch.long)
    else:
        data = _check_windows(model, windows)
    parts = all_parts(model, kinds)
    losses = _row_losses(model, data, [(), *((p,) for p in parts)]).mean(axis=1)
    before = float(losses[0])
    frame = pd.DataFrame([{"part": p.label, "kind": p.kind, "layer": p.layer + 1,
                           "head": p.head + 1 if p.head is not None else None, "loss_before": before,
                           "loss_after": float(loss), "increase": float(loss) - before}
                          for p, loss in zip(parts, losses[1:])], columns=IMPORTANCE_COLUMNS)
    frame["head"] = frame["head"].astype("Int64")
    frame.attrs.update(measured_on="text" if windows is None else "windows", windows=int(data.size(0)),
                       tokens=int(data.size(0) * (data.size(1) - 1)))
    return frame


def head_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The heads' loss increases of a `head_importance` table as a (layers, heads) array (NaN where a head is
    missing), for the heatmap."""
    heads = frame[frame["kind"] == "head"]
    if heads.empty:
        return np.zeros((0, 0))
    matrix = np.full((int(heads["layer"].max()), int(heads["head"].max())), np.nan)
    for row in heads.itertuples():
        matrix[int(row.layer) - 1, int(row.head) - 1] = row.increase
    return matrix

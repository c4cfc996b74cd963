"""Reading a loss curve: what a loss means next to two simple baselines, and when a run starts to overfit.

Two reference models put a loss in context:

- **uniform guess**: every one of the V tokens equally likely; its loss is ln V nats per token.
- **unigram**: each token as likely as it is frequent in the training text, ignoring the context; its loss (on that
  text) is the entropy of the token frequencies, -sum p log p. A model that beats it has learned something about
  *order*, not only about which tokens are common.

**Perplexity** is e^loss: a model with perplexity N is as unsure as if it picked among N equally likely tokens. "N times
better than guessing by word frequency" is the unigram model's perplexity divided by the model's: e^(unigram - loss).

**Overfitting**: the validation loss rose at each of the last 3 evaluations while the training loss kept falling —
the model is memorising its training text instead of learning what carries over to new text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..training import StepMetrics

RISES_FOR_OVERFITTING = 3   # consecutive rises of the validation loss that make an overfitting notice


def uniform_loss(vocab_size: int) -> float:
    """Loss of a uniform guess over `vocab_size` tokens: ln V."""
    return math.log(vocab_size)


def unigram_loss(ids: torch.Tensor | Sequence[int], vocab_size: int | None = None) -> float:
    """Loss (nats per token) on `ids` of the unigram model fitted to `ids`: the entropy of their frequencies."""
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    if ids.numel() == 0:
        raise ValueError("the unigram baseline needs at least one token")
    counts = torch.bincount(ids, minlength=vocab_size or 0).double()
    p = counts[counts > 0] / ids.numel()
    return float(-(p * p.log()).sum())


SMOOTHING = 0.95   # the moving average's weight on its previous value


def smoothed_curve(points: Sequence[tuple[int, float]], max_points: int) -> list[tuple[int, float, float]]:
    """(step, loss, moving average of the loss) thinned to about `max_points`, the last point always kept; the
    moving average reads every point, so thinning does not change it."""
    stride = max(1, math.ceil(len(points) / max_points))
    out, avg = [], None
    for i, (step, loss) in enumerate(points):
        avg = loss if avg is None else SMOOTHING * avg + (1 - SMOOTHING) * loss
        if i % stride == 0 or i == len(points) - 1:
            out.append((step, loss, avg))
    return out


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 700.0))  # e^700 is near float's limit; a loss that high is a diverged run anyway


@dataclass(frozen=True)
class Baselines:
    """The two reference losses of one run (nats per token)."""

    uniform: float
    unigram: float

    @classmethod
    def of(cls, train_ids: torch.Tensor, vocab_size: int) -> "Baselines":
        return cls(uniform=uniform_loss(vocab_size), unigram=unigram_loss(train_ids, vocab_size))

    def times_better(self, loss: float) -> float:
        """How many times smaller the model's perplexity is than the unigram model's: e^(unigram - loss)."""
        return math.exp(max(-700.0, min(700.0, self.unigram - loss)))


@dataclass(frozen=True)
class OverfittingNotice:
    since_step: int          # the evaluation after which the validation loss started rising
    best_val_loss: float     # the validation loss there, the lowest of the rising stretch
    last_val_loss: float


def overfitting(history: Sequence[StepMetrics], rises: int = RISES_FOR_OVERFITTING) -> OverfittingNotice | None:
    """A notice when the validation loss rose at each of the last `rises` evaluations while the training loss fell.

    The training loss compared is its mean over the steps since the evaluation before (one batch is too noisy): it
    must be lower after the last evaluation than in the stretch before the rise began.
    """
    evals: list[tuple[int, float, float]] = []   # (step, val loss, mean train loss since the previous evaluation)
    window: list[float] = []
    for m in history:
        window.append(m.train_loss)
        if m.val_loss is not None:
            evals.append((m.step, m.val_loss, sum(window) / len(window)))
            window = []
    if len(evals) < rises + 1:
        return None
    tail = evals[-(rises + 1):]
    rising = all(b[1] > a[1] for a, b in zip(tail, tail[1:]))
    train_falling = tail[-1][2] < tail[0][2]
    if not (rising and train_falling):
        return None
    return OverfittingNotice(since_step=tail[0][0], best_val_loss=tail[0][1], last_val_loss=tail[-1][1])

"""Sampling: how one next token is chosen from the model's logits.

The model scores every token of the vocabulary (its logits). Sampling reshapes those scores in stages, then draws:

    logits -> / temperature -> keep the top-k -> keep the nucleus (top-p) -> draw one token

- temperature divides the logits: below 1 the likely tokens get likelier, above 1 rare tokens get a chance.
  Temperature 0 is greedy: always the most likely token (an argmax, nothing random).
- top-k keeps the k most likely tokens, never more (a tie at the cut goes to the lower token id).
- top-p (nucleus sampling) keeps the smallest set of most likely tokens whose probability reaches p, read after
  top-k.

Each stage renormalises over the tokens it keeps (a softmax of their logits). One `SamplingSettings` describes the
whole draw (temperature, top-k, top-p, seed) and travels unchanged from the caller to `pick_token`, which generation
calls once per token. `sampling_steps` returns every stage as data for the picture; it shares its helpers with
`final_distribution` (what `pick_token` draws from), so the picture is exactly what sampling does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .errors import GenerationError


@dataclass(frozen=True)
class SamplingSettings:
    """How the next token is chosen: temperature 0 means greedy; top_k / top_p None means no filtering; the same
    seed gives the same tokens (None: a fresh random seed each time)."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def check(self, vocab_size: int) -> None:
        """GenerationError, saying what is allowed, for settings that cannot be used with this vocabulary."""
        if not isinstance(self.temperature, (int, float)) or not math.isfinite(self.temperature) \
                or self.temperature < 0:
            raise GenerationError(f"temperature must be 0 (greedy) or a positive number, got {self.temperature!r}")
        if self.temperature > 100:
            raise GenerationError(f"temperature {self.temperature} is too high to mean anything; use at most 100")
        if self.top_k is not None and (not isinstance(self.top_k, int) or not 1 <= self.top_k <= vocab_size):
            raise GenerationError(f"top-k must be a whole number from 1 to the vocabulary size ({vocab_size}), "
                                  f"or None for no limit; got {self.top_k!r}")
        if self.top_p is not None and (not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1):
            raise GenerationError(f"top-p must be greater than 0 and at most 1, or None for no limit; "
                                  f"got {self.top_p!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise GenerationError(f"the seed must be a whole number, or None for a random one; got {self.seed!r}")

    def generator(self) -> torch.Generator | None:
        """The random numbers for one generation: seeded with `seed`; None when greedy (nothing is drawn)."""
        if self.greedy:
            return None
        generator = torch.Generator(device="cpu")
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        return generator


# ---------------------------------------------------------------------------------------------------------------
# The stages. `z` is one row of logits already divided by the temperature, shape (vocab,); tokens that may never be
# generated are at -inf. Each filter returns the ids of the tokens it keeps.

def _top_k_ids(z: torch.Tensor, k: int) -> torch.Tensor:
    """Exactly the k best tokens (fewer only when fewer than k can be generated at all). A tie across the cut is
    broken by the lower token id, so top-k never keeps more than k. torch.topk, not a full sort."""
    vals, idx = torch.topk(z, min(k + 1, z.numel()))               # (k + 1,): one more, to see a tie at the cut
    if k < z.numel() and vals[k] == vals[k - 1]:
        above = torch.nonzero(z > vals[k - 1]).flatten()
        tied = torch.nonzero(z == vals[k - 1]).flatten()[: k - above.numel()]   # nonzero is in id order
        idx = torch.cat([above, tied])
    else:
        idx = idx[:k]
    return idx[torch.isfinite(z[idx])]


def _top_p_ids(z: torch.Tensor, candidates: torch.Tensor, p: float) -> torch.Tensor:
    """The nucleus: the smallest best-first prefix of `candidates` whose probability (renormalised over them) reaches
    p; always at least the best token. Equal scores: lower id first."""
    candidates = candidates.sort().values                           # id order, so the stable sort breaks ties by id
    ranked = candidates[torch.sort(z[candidates], descending=True, stable=True).indices]   # (n,) best first
    probs = torch.softmax(z[ranked], dim=-1)                        # (n,)
    return ranked[(probs.cumsum(0) - probs) < p]                    # a token is kept while the mass before it is < p


def _filtered_ids(z: torch.Tensor, settings: SamplingSettings) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(ids top-k keeps, ids top-p keeps after it); None for a filter that is off. Top-p sorts only what top-k kept."""
    k_ids = None
    if settings.top_k is not None and settings.top_k < z.numel():
        k_ids = _top_k_ids(z, settings.top_k)
    p_ids = None
    if settings.top_p is not None and settings.top_p < 1.0:
        candidates = k_ids if k_ids is not None else torch.nonzero(torch.isfinite(z)).flatten()
        p_ids = _top_p_ids(z, candidates, settings.top_p)
    return k_ids, p_ids


def _renormalised(z: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The softmax over the kept `ids` only; 0 for every other token. Shape (vocab,)."""
    out = torch.zeros_like(z)
    out[ids] = torch.softmax(z[ids], dim=-1)
    return out


def _one_hot(logits: torch.Tensor) -> torch.Tensor:
    """Greedy's distribution: all of the mass on the most likely token. Shape (vocab,)."""
    return torch.zeros_like(logits).index_fill_(0, torch.argmax(logits).view(1), 1.0)


# ---------------------------------------------------------------------------------------------------------------
# The draw: what generation calls once per token.

def final_distribution(logits: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """The distribution a token is drawn from: the last stage of `sampling_steps`, without the stages before it."""
    if settings.greedy:
        return _one_hot(logits)
    z = logits / settings.temperature                               # (vocab,)
    k_ids, p_ids = _filtered_ids(z, settings)
    ids = p_ids if p_ids is not None else k_ids
    return torch.softmax(z, dim=-1) if ids is None else _renormalised(z, ids)


def sample_index(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """Draw index i with probability probs[i] by an exponential race: argmax(probs / q) with q ~ Exp(1).

    This is exactly how torch.multinomial draws one sample (same random numbers, same result; a test checks it), minus
    its input checks, which cost as much as the draw itself and are redundant here: probs come from a softmax.
    """
    q = torch.empty_like(probs).exponential_(1, generator=generator)   # (vocab,)
    return int(torch.argmax(probs / q))


def pick_token(logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator | None) -> int:
    """Choose the next token from a row of logits (banned tokens already at -inf): the argmax when greedy (no
    softmax, no sort: the per-token cost of greedy generation), else a draw from `final_distribution`, the last stage
    `sampling_steps` shows."""
    if settings.greedy:
        return int(torch.argmax(logits))
    return sample_index(final_distribution(logits, settings), generator)


# ---------------------------------------------------------------------------------------------------------------
# The stages as data, for the picture: the same helpers as the draw, every stage kept.

STAGE_NAMES = ("model", "temperature", "top-k", "top-p")


@dataclass(frozen=True)
class SamplingStage:
    name: str                 # one of STAGE_NAMES
    probs: np.ndarray         # next-token probabilities after this stage (0 for every token not kept); sums to 1
    kept: np.ndarray          # bool per token: still in the running after this stage
    removed: tuple[int, ...]  # token ids this stage removed (kept by the stage before), best first


@dataclass(frozen=True)
class SamplingSteps:
    """The next-token distribution at each stage of sampling, from the model's own softmax to the one drawn from."""

    stages: tuple[SamplingStage, ...]   # model, temperature, top-k, top-p (a stage that is off removes nothing)
    settings: SamplingSettings
    ranking: np.ndarray                 # token ids by the model's probability, best first (ties: lower id first)

    @property
    def final(self) -> SamplingStage:
        return self.stages[-1]

    def stage(self, name: str) -> SamplingStage:
        return self.stages[STAGE_NAMES.index(name)]

    def draw(self, generator: torch.Generator | None) -> int:
        """The token generation would pick here with this generator: the argmax when greedy, else a draw from the
        last stage (the same random numbers as generation's draw)."""
        if self.settings.greedy:
            return int(np.argmax(self.final.probs))
        return sample_index(torch.from_numpy(self.final.probs), generator)


def _mask(z: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(z, dtype=torch.bool).index_fill_(0, ids, True)   # (vocab,) True for the kept ids


def sampling_steps(logits: torch.Tensor, settings: SamplingSettings) -> SamplingSteps:
    """The next-token distribution at each stage: the model's softmax, after temperature, after top-k, after top-p
    (each renormalised over the tokens it keeps), with the tokens each stage removed.

    `logits` is one row (tokens that may never be generated at -inf, as `next_token_logits` gives them). Temperature
    0 is greedy: only the most likely token is kept, so top-k and top-p have nothing left to remove.
    """
    if not isinstance(settings, SamplingSettings):   # the old call was sampling_steps(logits, temperature, ...)
        raise TypeError(f"sampling_steps takes one SamplingSettings, e.g. sampling_steps(logits, "
                        f"SamplingSettings(temperature=0.8, top_k=40)); got {settings!r}")
    logits = logits.detach().float().cpu()
    if logits.dim() != 1:
        raise GenerationError(f"sampling_steps reads one row of logits, got shape {tuple(logits.shape)}")
    settings.check(logits.numel())
    finite = torch.isfinite(logits)                                 # (vocab,) the tokens that may be generated
    if not bool(finite.any()):
        raise GenerationError("every token is banned: there is nothing to sample")
    # (probs, kept) after temperature, top-k and top-p, in that order
    if settings.greedy:
        one_hot = _one_hot(logits)
        shaped = [(one_hot, one_hot > 0)] * 3
    else:
        z = logits / settings.temperature                           # (vocab,)
        shaped = [(torch.softmax(z, dim=-1), finite)]
        for ids in _filtered_ids(z, settings):                      # top-k, then top-p; None: that filter is off
            shaped.append(shaped[-1] if ids is None else (_renormalised(z, ids), _mask(z, ids)))
    ranking = np.argsort(-logits.numpy(), kind="stable")
    stages, before = [], finite
    for name, (probs, kept) in zip(STAGE_NAMES, [(torch.softmax(logits, dim=-1), finite)] + shaped):
        gone = (before & ~kept).numpy()
        stages.append(SamplingStage(name=name, probs=probs.numpy(), kept=kept.numpy(),
                                    removed=tuple(int(i) for i in ranking if gone[i])))
        before = kept
    return SamplingSteps(stages=tuple(stages), settings=settings, ranking=ranking)

"""Text generation: greedy, sampled (temperature, top-k, top-p, seed), streamed token by token, with a KV cache.

Sampling reshapes the model's next-token distribution in stages (temperature, then top-k, then top-p) before one
token is drawn; `sampling_steps` returns every stage as data and generation draws from its last stage. Greedy
(temperature 0) is a plain argmax. Generation continues any token sequence (`stream_from_ids`), so a learner can
branch on a token the model did not pick.

The model reads at most `block_size` tokens. A prompt longer than that is cropped to its last `block_size` tokens.
When generation fills the window, the oldest quarter is dropped and the rest is read again (one forward pass), so
the KV cache keeps working for long outputs. With or without the cache the same rule applies, which is why cached and
uncached generation give identical tokens: the cache changes the speed, never the words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from .errors import GenerationError, PromptError
from .model import CuteLLM, evaluating
from .tokenizer import Tokenizer

MAX_NEW_TOKENS = 1000
MAX_PROMPT_CHARS = 20_000


@dataclass(frozen=True)
class GeneratedToken:
    token_id: int
    text: str
    prob: float                              # the model's probability of this token (temperature 1, no filtering)
    alternatives: list[tuple[str, float]]    # the model's most likely tokens at this step, best first


@dataclass(frozen=True)
class SamplingSettings:
    """temperature 0 means greedy; top_k / top_p None means no filtering."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None

    def check(self, vocab_size: int) -> None:
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


def check_max_new_tokens(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool):
        raise GenerationError(f"the number of new tokens must be a whole number, got {n!r}")
    if n < 1:
        raise GenerationError(f"the number of new tokens must be at least 1, got {n}")
    if n > MAX_NEW_TOKENS:
        raise GenerationError(f"the number of new tokens is capped at {MAX_NEW_TOKENS}, got {n}")


def encode_prompt(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """Prompt text -> ids, refusing prompts the model cannot use (with a message that says why)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptError("the prompt is empty: type a few words for the model to continue")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise PromptError(f"the prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,} "
                          "(the model only reads its last few tokens anyway)")
    ids = tokenizer.encode(prompt)
    if not ids:
        raise PromptError("the prompt has no tokens the model can read")
    if all(i in tokenizer.special_ids for i in ids):
        unknown = tokenizer.unknown_words(prompt)
        raise PromptError("none of the prompt's words are in the model's vocabulary"
                          + (f" (unknown: {', '.join(unknown[:8])})" if unknown else "")
                          + "; try common words from the training text")
    return ids


def crop_to_context(ids: list[int], block_size: int) -> list[int]:
    """The last `block_size` ids: all that a model with that context reads."""
    return list(ids[-block_size:])


def encode_context(model: CuteLLM, tokenizer: Tokenizer, text: str) -> list[int]:
    """Text -> the token ids the model reads: PromptError for unusable text, then the last `block_size` ids."""
    return crop_to_context(encode_prompt(tokenizer, text), model.config.block_size)


def tokens_beyond_context(ids: Sequence[int], block_size: int) -> int:
    """How many of the first tokens a model with this context never reads (0 when the text fits)."""
    return max(0, len(ids) - block_size)


@dataclass(frozen=True)
class Repetition:
    tokens: tuple[int, ...]   # the repeating unit, e.g. (not,) or (the, cat)
    repeats: int              # how many times it ends the text in a row


def repeating_tail(ids: Sequence[int], max_period: int = 8) -> Repetition | None:
    """The unit the text ends by repeating ("not not not", "the cat the cat the cat"), or None. A unit of one to
    three tokens must come three times in a row, a longer one twice: natural text rarely does either."""
    ids = list(ids)
    for period in range(1, min(max_period, len(ids)) + 1):
        unit, repeats = ids[-period:], 1
        while len(ids) >= (repeats + 1) * period and ids[-(repeats + 1) * period:-repeats * period] == unit:
            repeats += 1
        if repeats >= (3 if period <= 3 else 2):
            return Repetition(tokens=tuple(unit), repeats=repeats)
    return None


class _Context:
    """The tokens the model currently sees, and (optionally) a KV cache of them."""

    def __init__(self, model: CuteLLM, ids: list[int], use_cache: bool):
        self.model = model
        self.block = model.config.block_size
        # Keeping three quarters of the window on overflow re-reads block/4 tokens per block/4 steps at most.
        self.keep = max(1, min(self.block - 1, (3 * self.block) // 4))
        self.use_cache = use_cache and model.config.causal  # a non-causal model cannot reuse past keys
        self.window = crop_to_context(ids, self.block)
        self._reset_cache()

    def _reset_cache(self) -> None:
        # One buffer for the whole generation: emptied, not reallocated, when the window moves.
        if self.use_cache:
            if getattr(self, "cache", None) is None:
                from .fast.decode import Decoder
                from .fast.kv_cache import new_cache
                self.cache = new_cache(self.model)
                self.decoder = Decoder(self.model, self.cache)   # the one-token step over this cache
            self.cache.clear()
        else:
            self.cache = None
        self.pending = list(self.window)

    def next_logits(self) -> torch.Tensor:
        if self.cache is not None and len(self.pending) == 1 and self.cache.length > 0:
            return self.decoder.step(self.pending.pop())   # the common case: one new token
        ids = self.window if self.cache is None else self.pending
        logits, _ = self.model(torch.tensor([ids], dtype=torch.long, device=self.model.device), cache=self.cache)
        self.pending = []
        return logits[0, -1]

    def append(self, token_id: int) -> None:
        if len(self.window) >= self.block:
            self.window = self.window[-self.keep:] + [token_id]
            self._reset_cache()
        else:
            self.window.append(token_id)
            self.pending.append(token_id)


def _banned_ids(tokenizer_special: set[int], unk_id: int) -> list[int]:
    # <pad> and <mask> never make sense as output; <unk> would print "<unk>", so the model picks a real word.
    return sorted(tokenizer_special | {unk_id})


def pick_token(logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator | None) -> int:
    """Choose the next token from a row of logits (banned tokens already at -inf): the argmax when greedy (no
    softmax, no sort: the per-token cost of greedy generation), else a draw from `final_distribution`, the last stage
    `sampling_steps` shows."""
    if settings.temperature == 0:
        return int(torch.argmax(logits))
    return sample_index(final_distribution(logits, settings), generator)


# ---------------------------------------------------------------------------------------------------------------
# Sampling stages: how temperature, top-k and top-p reshape the model's distribution before one token is drawn.
# `final_distribution` (what generation draws from) and `sampling_steps` (the picture) share these helpers, so the
# picture is exactly what sampling does.

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
        if self.settings.temperature == 0:
            return int(np.argmax(self.final.probs))
        return sample_index(torch.from_numpy(self.final.probs), generator)


def _finite_ids(z: torch.Tensor) -> torch.Tensor:
    return torch.nonzero(torch.isfinite(z)).flatten()


def _ranked(z: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """`ids` ordered by score, best first; equal scores: lower id first (a stable sort of ids in id order)."""
    ids = ids.sort().values
    return ids[torch.sort(z[ids], descending=True, stable=True).indices]


def _top_k_ids(z: torch.Tensor, k: int) -> torch.Tensor:
    """Exactly the k best tokens (fewer only when fewer than k can be generated at all). A tie across the cut is
    broken by the lower token id, so top-k never keeps more than k. torch.topk, not a full sort."""
    vals, idx = torch.topk(z, min(k + 1, z.numel()))
    if k < z.numel() and vals[k] == vals[k - 1]:
        above = torch.nonzero(z > vals[k - 1]).flatten()
        tied = torch.nonzero(z == vals[k - 1]).flatten()[: k - above.numel()]
        idx = torch.cat([above, tied])
    else:
        idx = idx[:k]
    return idx[torch.isfinite(z[idx])]


def _top_p_ids(z: torch.Tensor, ranked: torch.Tensor, p: float) -> torch.Tensor:
    """The smallest best-first prefix of `ranked` whose probability (renormalised over `ranked`) reaches p; always at
    least the best token."""
    probs = torch.softmax(z[ranked], dim=-1)
    return ranked[(probs.cumsum(0) - probs) < p]


def _renormalised(z: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(z)
    out[ids] = torch.softmax(z[ids], dim=-1)
    return out


def _filtered_ids(z: torch.Tensor, settings: SamplingSettings) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(ids top-k keeps, ids top-p keeps after it); None for a filter that is off. Top-p sorts only what top-k kept."""
    k_ids = None
    if settings.top_k is not None and settings.top_k < z.numel():
        k_ids = _top_k_ids(z, settings.top_k)
    p_ids = None
    if settings.top_p is not None and settings.top_p < 1.0:
        p_ids = _top_p_ids(z, _ranked(z, k_ids if k_ids is not None else _finite_ids(z)), settings.top_p)
    return k_ids, p_ids


def _one_hot(logits: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(logits).index_fill_(0, torch.argmax(logits).view(1), 1.0)


def final_distribution(logits: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """The distribution a token is drawn from: the last stage of `sampling_steps`, without the stages before it."""
    if settings.temperature == 0:
        return _one_hot(logits)
    z = logits / settings.temperature
    k_ids, p_ids = _filtered_ids(z, settings)
    ids = p_ids if p_ids is not None else k_ids
    return torch.softmax(z, dim=-1) if ids is None else _renormalised(z, ids)


def sampling_steps(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None) -> SamplingSteps:
    """The next-token distribution at each stage: the model's softmax, after temperature, after top-k, after top-p
    (each renormalised over the tokens it keeps), with the tokens each stage removed.

    `logits` is one row (tokens that may never be generated at -inf, as `next_token_logits` gives them). Temperature
    0 is greedy: only the most likely token is kept, so top-k and top-p have nothing left to remove.
    """
    logits = logits.detach().float().cpu()
    if logits.dim() != 1:
        raise GenerationError(f"sampling_steps reads one row of logits, got shape {tuple(logits.shape)}")
    settings = SamplingSettings(temperature, top_k, top_p)
    settings.check(logits.numel())
    finite = torch.isfinite(logits)
    if not bool(finite.any()):
        raise GenerationError("every token is banned: there is nothing to sample")
    model = torch.softmax(logits, dim=-1)
    if settings.temperature == 0:
        after_t = _one_hot(logits)
        after_k = after_p = after_t
        kept_t = kept_k = kept_p = after_t > 0
    else:
        z = logits / settings.temperature
        k_ids, p_ids = _filtered_ids(z, settings)
        after_t, kept_t = torch.softmax(z, dim=-1), finite
        after_k, kept_k = (after_t, kept_t) if k_ids is None else (_renormalised(z, k_ids), _mask(z, k_ids))
        after_p, kept_p = (after_k, kept_k) if p_ids is None else (_renormalised(z, p_ids), _mask(z, p_ids))
    ranking = np.argsort(-logits.numpy(), kind="stable")
    stages, before = [], finite
    for name, probs, kept in zip(STAGE_NAMES, (model, after_t, after_k, after_p), (finite, kept_t, kept_k, kept_p)):
        gone = (before & ~kept).numpy()
        stages.append(SamplingStage(name=name, probs=probs.numpy(), kept=kept.numpy(),
                                    removed=tuple(int(i) for i in ranking if gone[i])))
        before = kept
    return SamplingSteps(stages=tuple(stages), settings=settings, ranking=ranking)


def _mask(z: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(z, dtype=torch.bool).index_fill_(0, ids, True)


def sample_index(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """Draw index i with probability probs[i] by an exponential race: argmax(probs / q) with q ~ Exp(1).

    This is exactly how torch.multinomial draws one sample (same random numbers, same result; a test checks it), minus
    its input checks, which cost as much as the draw itself and are redundant here: probs come from a softmax.
    """
    q = torch.empty_like(probs).exponential_(1, generator=generator)
    return int(torch.argmax(probs / q))


def _steps(model: CuteLLM, ids: list[int], max_new_tokens: int, settings: SamplingSettings, banned: list[int],
           seed: int | None, use_cache: bool) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (token_id, raw logits row) for each new token."""
    generator = None
    if settings.temperature > 0:
        generator = torch.Generator(device="cpu")
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
    with evaluating(model):
        ban = torch.zeros(model.config.vocab_size, dtype=torch.bool)
        ban[banned] = True
        ctx = _Context(model, ids, use_cache)
        for _ in range(max_new_tokens):
            raw = ctx.next_logits().float().cpu()
            token = pick_token(raw.masked_fill(ban, float("-inf")), settings, generator)
            yield token, raw
            ctx.append(token)


def generate_ids(model: CuteLLM, ids: list[int], max_new_tokens: int, *, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 use_cache: bool = True, banned: list[int] | None = None) -> list[int]:
    """Token ids in, new token ids out (the lowest-level generation API; used by the benchmark)."""
    settings = SamplingSettings(temperature, top_k, top_p)
    settings.check(model.config.vocab_size)
    check_max_new_tokens(max_new_tokens)
    ids = _check_ids(ids, model.config.vocab_size)
    return [t for t, _ in _steps(model, ids, max_new_tokens, settings, banned or [], seed, use_cache)]


def _check_ids(ids: Sequence[int], vocab_size: int) -> list[int]:
    ids = [int(i) for i in ids]
    if not ids:
        raise PromptError("generation needs at least one prompt token")
    if not all(0 <= i < vocab_size for i in ids):
        raise PromptError(f"token ids must be between 0 and {vocab_size - 1}")
    return ids


def stream_from_ids(model: CuteLLM, tokenizer: Tokenizer, ids: Sequence[int], max_new_tokens: int = 20, *,
                    temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                    seed: int | None = None, use_cache: bool = True, alternatives: int = 5
                    ) -> Iterator[GeneratedToken]:
    """Continue any token sequence (a prompt plus tokens a learner chose: a branch), one GeneratedToken at a time."""
    settings = SamplingSettings(temperature, top_k, top_p)
    settings.check(tokenizer.vocab_size)
    check_max_new_tokens(max_new_tokens)
    ids = _check_ids(ids, tokenizer.vocab_size)
    banned = _banned_ids(tokenizer.special_ids, tokenizer.unk_id)
    for token, raw in _steps(model, ids, max_new_tokens, settings, banned, seed, use_cache):
        yield describe_token(tokenizer, raw, token, alternatives)


def describe_token(tokenizer: Tokenizer, logits: torch.Tensor, token_id: int, alternatives: int = 5
                   ) -> GeneratedToken:
    """A chosen token with its probability under `logits` (softmax, temperature 1) and the most likely tokens."""
    probs = torch.softmax(logits.float(), dim=-1)
    top = torch.topk(probs, min(alternatives, probs.numel()))
    return GeneratedToken(token_id=token_id, text=tokenizer.token(token_id), prob=float(probs[token_id]),
                          alternatives=[(tokenizer.token(int(i)), float(p)) for p, i in zip(top.values, top.indices)])


def stream_generate(model: CuteLLM, tokenizer: Tokenizer, prompt: str, max_new_tokens: int = 20, *,
                    temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                    seed: int | None = None, use_cache: bool = True, alternatives: int = 5
                    ) -> Iterator[GeneratedToken]:
    """Yield generated tokens one at a time, each with its probability and the model's top alternatives."""
    yield from stream_from_ids(model, tokenizer, encode_prompt(tokenizer, prompt), max_new_tokens,
                               temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, use_cache=use_cache,
                               alternatives=alternatives)


def sample_generate(model: CuteLLM, tokenizer: Tokenizer, prompt: str, max_new_tokens: int = 20, *,
                    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                    seed: int | None = None, use_cache: bool = True) -> str:
    """Prompt + sampled continuation as text. The same seed gives the same text."""
    new = [t.token_id for t in stream_generate(model, tokenizer, prompt, max_new_tokens, temperature=temperature,
                                               top_k=top_k, top_p=top_p, seed=seed, use_cache=use_cache,
                                               alternatives=1)]
    return tokenizer.continue_text(prompt, new)


def generate(model: CuteLLM, tokenizer: Tokenizer, prompt: str, max_new_tokens: int = 20, *,
             use_cache: bool = True) -> str:
    """Prompt + greedy continuation (always the most likely next token) as text. Deterministic."""
    return sample_generate(model, tokenizer, prompt, max_new_tokens, temperature=0.0, use_cache=use_cache)


def next_token_logits(model: CuteLLM, tokenizer: Tokenizer, ids: Sequence[int]) -> torch.Tensor:
    """The logits generation reads for the token after `ids` (their last `block_size`), as a CPU float row with the
    tokens that are never generated at -inf. Keep it to redraw `sampling_steps` for new settings without the model."""
    ids = _check_ids(ids, tokenizer.vocab_size)
    with evaluating(model):
        raw = _Context(model, ids, use_cache=False).next_logits().float().cpu()
    return raw.index_fill(0, torch.tensor(_banned_ids(tokenizer.special_ids, tokenizer.unk_id)), float("-inf"))


def next_token_distribution(model: CuteLLM, tokenizer: Tokenizer, prompt: str, top_k: int = 10
                            ) -> list[tuple[str, float]]:
    """The model's top-k candidates for the token after `prompt`, with probabilities, best first."""
    ids = encode_context(model, tokenizer, prompt)
    with evaluating(model):
        logits, _ = model(torch.tensor([ids], dtype=torch.long, device=model.device))
    probs = torch.softmax(logits[0, -1].float(), dim=-1).cpu()
    top = torch.topk(probs, min(top_k, probs.numel()))
    return [(tokenizer.token(int(i)), float(p)) for p, i in zip(top.values, top.indices)]

"""Text generation: greedy or sampled, streamed token by token, with a KV cache.

Generation is a loop: the model reads the text so far and gives the next token's logits, `pick_token`
(cutellm/sampling.py) chooses one token from them, the token is appended, and the model reads again. How the token is
chosen is one `SamplingSettings` (temperature, top-k, top-p, seed; None means greedy), passed unchanged to every
draw. Generation continues any token sequence (`stream_from_ids`), so a learner can branch on a token the model did
not pick.

The model reads at most `block_size` tokens. A prompt longer than that is cropped to its last `block_size` tokens.
When generation fills the window, the oldest quarter is dropped and the rest is read again (one forward pass), so
the KV cache keeps working for long outputs. With or without the cache the same rule applies, which is why cached and
uncached generation give identical tokens: the cache changes the speed, never the words.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from .errors import GenerationError, PromptError
from .model import CuteLLM, evaluating
# Generation needs the settings and the draw; the other names stay importable from here, where they used to live.
from .sampling import (STAGE_NAMES, SamplingSettings, SamplingStage, SamplingSteps, final_distribution,  # noqa: F401
                       pick_token, sample_index, sampling_steps)
from .tokenizer import Tokenizer

MAX_NEW_TOKENS = 1000
MAX_PROMPT_CHARS = 20_000


@dataclass(frozen=True)
class GeneratedToken:
    token_id: int
    text: str
    prob: float                              # the model's probability of this token (temperature 1, no filtering)
    alternatives: list[tuple[str, float]]    # the model's most likely tokens at this step, best first


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


def _steps(model: CuteLLM, ids: list[int], max_new_tokens: int, settings: SamplingSettings, banned: list[int],
           use_cache: bool) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (token_id, raw logits row) for each new token."""
    generator = settings.generator()   # once per generation: the seed fixes every draw that follows
    with evaluating(model):
        ban = torch.zeros(model.config.vocab_size, dtype=torch.bool)
        ban[banned] = True
        ctx = _Context(model, ids, use_cache)
        for _ in range(max_new_tokens):
            raw = ctx.next_logits().float().cpu()                                  # (vocab,)
            token = pick_token(raw.masked_fill(ban, float("-inf")), settings, generator)
            yield token, raw
            ctx.append(token)


def _check_ids(ids: Sequence[int], vocab_size: int) -> list[int]:
    ids = [int(i) for i in ids]
    if not ids:
        raise PromptError("generation needs at least one prompt token")
    if not all(0 <= i < vocab_size for i in ids):
        raise PromptError(f"token ids must be between 0 and {vocab_size - 1}")
    return ids


def _checked_settings(sampling: SamplingSettings | None, vocab_size: int) -> SamplingSettings:
    """`sampling` itself (the very object: every draw reads what the caller passed), or greedy settings for None."""
    if sampling is None:
        return SamplingSettings()
    if not isinstance(sampling, SamplingSettings):
        raise TypeError(f"sampling must be a SamplingSettings, e.g. SamplingSettings(temperature=0.8, top_k=40, "
                        f"seed=1), or None for greedy; got {sampling!r}")
    sampling.check(vocab_size)
    return sampling


def _sampling_in_one_object(generate_fn):
    """Calls in the old style (temperature=0.8, top_k=40, seed=1) get a TypeError that shows the new call."""
    @functools.wraps(generate_fn)
    def checked(*args, **kwargs):
        old = [name for name in ("temperature", "top_k", "top_p", "seed") if name in kwargs]
        if old:
            fields = ", ".join(f"{name}={kwargs[name]!r}" for name in old)
            raise TypeError(f"{generate_fn.__name__}() takes the sampling settings as one object: "
                            f"sampling=SamplingSettings({fields})")
        return generate_fn(*args, **kwargs)
    return checked


@_sampling_in_one_object
def generate_ids(model: CuteLLM, ids: list[int], max_new_tokens: int, *, sampling: SamplingSettings | None = None,
                 use_cache: bool = True, banned: list[int] | None = None) -> list[int]:
    """Token ids in, new token ids out (the lowest-level generation API; used by the benchmark). `sampling` None is
    greedy; nothing is banned unless `banned` says so."""
    settings = _checked_settings(sampling, model.config.vocab_size)
    check_max_new_tokens(max_new_tokens)
    ids = _check_ids(ids, model.config.vocab_size)
    return [t for t, _ in _steps(model, ids, max_new_tokens, settings, banned or [], use_cache)]


@_sampling_in_one_object
def stream_from_ids(model: CuteLLM, tokenizer: Tokenizer, ids: Sequence[int], max_new_tokens: int = 20, *,
                    sampling: SamplingSettings | None = None, use_cache: bool = True, alternatives: int = 5,
                    ban: Sequence[int] = ()) -> Iterator[GeneratedToken]:
    """Continue any token sequence (a prompt plus tokens a learner chose: a branch), one GeneratedToken at a time.
    `sampling` None is greedy; the ids in `ban` are never written (nor are <pad>, <unk> and <mask>)."""
    settings = _checked_settings(sampling, tokenizer.vocab_size)
    check_max_new_tokens(max_new_tokens)
    ids = _check_ids(ids, tokenizer.vocab_size)
    banned = sorted(set(_banned_ids(tokenizer.special_ids, tokenizer.unk_id)) | set(ban))
    for token, raw in _steps(model, ids, max_new_tokens, settings, banned, use_cache):
        yield describe_token(tokenizer, raw, token, alternatives)


def describe_token(tokenizer: Tokenizer, logits: torch.Tensor, token_id: int, alternatives: int = 5
                   ) -> GeneratedToken:
    """A chosen token with its probability under `logits` (softmax, temperature 1) and the most likely tokens."""
    probs = torch.softmax(logits.float(), dim=-1)
    top = torch.topk(probs, min(alternatives, probs.numel()))
    return GeneratedToken(token_id=token_id, text=tokenizer.token(token_id), prob=float(probs[token_id]),
                          alternatives=[(tokenizer.token(int(i)), float(p)) for p, i in zip(top.values, top.indices)])


@_sampling_in_one_object
def stream_generate(model: CuteLLM, tokenizer: Tokenizer, prompt: str, max_new_tokens: int = 20, *,
                    sampling: SamplingSettings | None = None, use_cache: bool = True, alternatives: int = 5
                    ) -> Iterator[GeneratedToken]:
    """Yield generated tokens one at a time, each with its probability and the model's top alternatives. `sampling`
    None is greedy."""
    yield from stream_from_ids(model, tokenizer, encode_prompt(tokenizer, prompt), max_new_tokens, sampling=sampling,
                               use_cache=use_cache, alternatives=alternatives)


@_sampling_in_one_object
def sample_generate(model: CuteLLM, tokenizer: Tokenizer, prompt: str, max_new_tokens: int = 20, *,
                    sampling: SamplingSettings = SamplingSettings(temperature=1.0), use_cache: bool = True) -> str:
    """Prompt + sampled continuation as text; by default from the model's own distribution (temperature 1, no
    filtering). The same settings with the same seed give the same text."""
    new = [t.token_id for t in stream_generate(model, tokenizer, prompt, max_new_tokens, sampling=sampling,
                                               use_cache=use_cache, alternatives=1)]
    return tokenizer.continue_text(prompt, new)


def generate(model: CuteLLM, tokenizer: Tokenizer, prompt: str, max_new_tokens: int = 20, *,
             use_cache: bool = True) -> str:
    """Prompt + greedy continuation (always the most likely next token) as text. Deterministic."""
    return sample_generate(model, tokenizer, prompt, max_new_tokens, sampling=SamplingSettings(), use_cache=use_cache)


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

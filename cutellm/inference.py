"""Text generation: greedy, sampled (temperature, top-k, top-p, seed), streamed token by token, with a KV cache.

The model reads at most `block_size` tokens. A prompt longer than that is cropped to its last `block_size` tokens.
When generation fills the window, the oldest quarter is dropped and the rest is read again (one forward pass), so
the KV cache keeps working for long outputs. With or without the cache the same rule applies, which is why cached and
uncached generation give identical tokens: the cache changes the speed, never the words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

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
                self.cache = self.model.new_cache()
            self.cache.clear()
        else:
            self.cache = None
        self.pending = list(self.window)

    def next_logits(self) -> torch.Tensor:
        device = self.model.device
        if self.cache is None:
            x = torch.tensor([self.window], dtype=torch.long, device=device)
            logits, _ = self.model(x)
        elif len(self.pending) == 1 and self.cache.length > 0:
            logits = self.model.decode_step(self.pending.pop(), self.cache)[None, None]
        else:
            x = torch.tensor([self.pending], dtype=torch.long, device=device)
            logits, _ = self.model(x, cache=self.cache)
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
    """Choose the next token from a row of logits (banned tokens already at -inf)."""
    if settings.temperature == 0:
        return int(torch.argmax(logits))
    logits = logits / settings.temperature
    if settings.top_k is not None and settings.top_k < logits.numel():
        kth = torch.topk(logits, settings.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if settings.top_p is not None and settings.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the best token).
        drop = (sorted_probs.cumsum(0) - sorted_probs) >= settings.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return sample_index(probs, generator)


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
    if not ids:
        raise PromptError("generation needs at least one prompt token")
    return [t for t, _ in _steps(model, ids, max_new_tokens, settings, banned or [], seed, use_cache)]


def stream_generate(model: CuteLLM, tokenizer: Tokenizer, prompt: str, max_new_tokens: int = 20, *,
                    temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                    seed: int | None = None, use_cache: bool = True, alternatives: int = 5
                    ) -> Iterator[GeneratedToken]:
    """Yield generated tokens one at a time, each with its probability and the model's top alternatives."""
    settings = SamplingSettings(temperature, top_k, top_p)
    settings.check(tokenizer.vocab_size)
    check_max_new_tokens(max_new_tokens)
    ids = encode_prompt(tokenizer, prompt)
    banned = _banned_ids(tokenizer.special_ids, tokenizer.unk_id)
    for token, raw in _steps(model, ids, max_new_tokens, settings, banned, seed, use_cache):
        probs = torch.softmax(raw, dim=-1)
        top = torch.topk(probs, min(alternatives, probs.numel()))
        yield GeneratedToken(token_id=token, text=tokenizer.token(token), prob=float(probs[token]),
                             alternatives=[(tokenizer.token(int(i)), float(p))
                                           for p, i in zip(top.values, top.indices)])


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


def next_token_distribution(model: CuteLLM, tokenizer: Tokenizer, prompt: str, top_k: int = 10
                            ) -> list[tuple[str, float]]:
    """The model's top-k candidates for the token after `prompt`, with probabilities, best first."""
    ids = encode_context(model, tokenizer, prompt)
    with evaluating(model):
        logits, _ = model(torch.tensor([ids], dtype=torch.long, device=model.device))
    probs = torch.softmax(logits[0, -1].float(), dim=-1).cpu()
    top = torch.topk(probs, min(top_k, probs.numel()))
    return [(tokenizer.token(int(i)), float(p)) for p, i in zip(top.values, top.indices)]

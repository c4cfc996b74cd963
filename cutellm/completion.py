"""Fill the `___` blanks of a phrase.

Each candidate word is scored by how likely the model finds the *whole* filled-in sentence: the probability of the
candidate after the words before the blank, times the probability of every word after it (up to the next blank).
Reading only the logits at the blank's own position would ask "what comes after the blank?" — the off-by-one that made
the first CuteGPT answer "the ___ sat on the mat" with "sat". The scores of all vocabulary words are turned into
probabilities with a softmax, so they sum to 1 over the vocabulary.

Several blanks are filled left to right: blank 1 is scored with the words up to blank 2, filled with its best
candidate, then blank 2 is scored with that choice in place, and so on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch

from .errors import PromptError
from .model import CuteLLM, evaluating
from .tokenizer import Tokenizer

BLANK_RE = re.compile(r"_{3,}")
MAX_BLANKS = 10
MAX_PHRASE_CHARS = 2_000
_SCORE_BATCH = 256


@dataclass(frozen=True)
class Candidate:
    word: str
    prob: float              # normalised over every candidate word for this blank
    log_likelihood: float    # log-probability of the filled-in span under the model


@dataclass(frozen=True)
class BlankFill:
    index: int               # 0-based position of the blank in the phrase
    candidates: list[Candidate]

    @property
    def best(self) -> Candidate:
        return self.candidates[0]


@dataclass(frozen=True)
class Completion:
    text: str                # the phrase as given
    filled_text: str         # the phrase with every blank replaced by its best candidate
    blanks: list[BlankFill]

    def segments(self) -> list[tuple[str, bool]]:
        """The filled-in phrase as (text, is_filled_word) pieces, for highlighting the chosen words."""
        pieces = BLANK_RE.split(self.text)
        out = [(pieces[0], False)]
        for blank, piece in zip(self.blanks, pieces[1:]):
            out += [(blank.best.word, True), (piece, False)]
        return [(t, filled) for t, filled in out if t]


def count_blanks(text: str) -> int:
    return len(BLANK_RE.findall(text))


def _candidate_ids(tokenizer: Tokenizer) -> list[int]:
    ids = [i for i in range(tokenizer.vocab_size) if i not in tokenizer.special_ids]
    if tokenizer.kind == "word":  # a blank stands for a word, not a comma
        ids = [i for i in ids if any(ch.isalnum() for ch in tokenizer.token(i))]
    return ids


def _boundary_ids(tokenizer: Tokenizer) -> list[int]:
    """A stand-in "start of sentence" for a blank with nothing before it: sentences in the corpus follow '.'."""
    for tok in (".", "\n"):
        if tok in tokenizer.token_to_id:
            return [tokenizer.token_to_id[tok]]
    return []


@torch.no_grad()
def score_candidates(model: CuteLLM, prefix: list[int], candidates: list[int], suffix: list[int]) -> torch.Tensor:
    """Log-likelihood of `prefix + [c] + suffix` from c onwards, for each candidate c. Returns (len(candidates),)."""
    block = model.config.block_size
    suffix = suffix[: max(0, block // 2)]
    prefix = prefix[-(block - 1 - len(suffix)):] if block - 1 - len(suffix) > 0 else []
    p = len(prefix)
    L = p + 1 + len(suffix)
    rows = torch.empty((len(candidates), L), dtype=torch.long)
    rows[:, :p] = torch.tensor(prefix, dtype=torch.long)
    rows[:, p] = torch.tensor(candidates, dtype=torch.long)
    if suffix:
        rows[:, p + 1:] = torch.tensor(suffix, dtype=torch.long)
    # Logits at position t predict token t + 1: score tokens p..L-1 with logits p-1..L-2. A blank with no prefix has
    # no prediction for the candidate itself; only the words after it count then.
    first = max(p, 1)
    scores = []
    for chunk in rows.split(_SCORE_BATCH):
        chunk = chunk.to(model.device)
        logits, _ = model(chunk)
        logp = torch.log_softmax(logits[:, first - 1: L - 1].float(), dim=-1)
        picked = logp.gather(-1, chunk[:, first:L].unsqueeze(-1)).squeeze(-1)
        scores.append(picked.sum(dim=1).cpu())
    return torch.cat(scores) if scores else torch.zeros(len(candidates))


def complete_phrase(model: CuteLLM, tokenizer: Tokenizer, text: str, top_k: int = 5) -> Completion:
    """Fill each `___` in `text`; returns the top_k candidates per blank (best first) and the filled sentence."""
    if not isinstance(text, str) or not text.strip():
        raise PromptError("the phrase is empty: write a sentence with ___ where a word is missing")
    if len(text) > MAX_PHRASE_CHARS:
        raise PromptError(f"the phrase has {len(text):,} characters; the limit is {MAX_PHRASE_CHARS:,}")
    n_blanks = count_blanks(text)
    if n_blanks == 0:
        raise PromptError("the phrase has no blank: write ___ (three underscores) where a word is missing, "
                          "e.g. 'the cat sat on the ___'")
    if n_blanks > MAX_BLANKS:
        raise PromptError(f"the phrase has {n_blanks} blanks; fill at most {MAX_BLANKS} at a time")
    if not isinstance(top_k, int) or top_k < 1:
        raise PromptError(f"top_k must be a whole number >= 1, got {top_k!r}")

    pieces = BLANK_RE.split(text)
    piece_ids = [tokenizer.encode(piece) for piece in pieces]
    if not any(piece_ids):
        raise PromptError("the phrase is only blanks: add some words around the ___ so the model has context")

    candidates = _candidate_ids(tokenizer)
    with evaluating(model):
        filled: list[int] = list(piece_ids[0])
        results: list[BlankFill] = []
        for b in range(n_blanks):
            prefix = filled or _boundary_ids(tokenizer)
            scores = score_candidates(model, prefix, candidates, piece_ids[b + 1])
            probs = torch.softmax(scores, dim=0)
            top = torch.topk(probs, min(top_k, len(candidates)))
            results.append(BlankFill(index=b, candidates=[
                Candidate(word=tokenizer.token(candidates[int(i)]), prob=float(p), log_likelihood=float(scores[i]))
                for p, i in zip(top.values, top.indices)]))
            filled += [candidates[int(top.indices[0])], *piece_ids[b + 1]]

    completion = Completion(text=text, filled_text="", blanks=results)
    return replace(completion, filled_text="".join(t for t, _ in completion.segments()))

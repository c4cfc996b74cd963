"""Fill the `___` blanks of a phrase with words, for any tokenizer, by whole-sentence likelihood.

**Candidates are words.** Every checkpoint carries the most frequent words of its training corpus (`corpus_words`,
metadata "words"); older checkpoints fall back to what their tokenizer gives (`candidate_words`). A word may be one
token (a word model) or several (characters, BPE subwords): the blank stands for a word either way.

**Scoring.** A candidate is put in the blank and the filled-in text is encoded as a whole, so a BPE word gets the
tokens it really has in that place (" cat", with its space). Its score is the log-probability the model gives to every
token from the candidate's first token to the end of the text after it (up to the next blank): the candidate's own
tokens and every token that follows. The tokens before the blank are the same for every candidate and left out.
Reading only the logits at the blank's position would ask "what comes after the blank?" — the off-by-one that made
the first CuteGPT answer "the ___ sat on the mat" with "sat". Scores become probabilities by a softmax over the
candidate set.

**Length.** The score is the text's real log-probability, summed, not averaged per token: a word of five tokens pays
for all five, as it should (a rarer, longer word makes a less likely sentence), and a short candidate cannot win by
being the start of the right word, because the text after it must still follow ("the ca sat" makes " sat" unlikely).
When the phrase ends with the blank nothing follows, so the phrase must end there: the probability that the next
token ends it (punctuation or a new line) is multiplied in. Without it a word that usually comes before another
would win ("with a ___" -> "little", not "knife"), and for a character model "m" would beat "mat" every time, since
every text that starts "mat" also starts "m". Between two blanks (`___ ___`) the next word's tokens show where a word
ends; partial fillings are ranked with the probability that the word is over (a space or punctuation follows) too.

**Several blanks: a beam search.** Blanks are filled left to right. A partial filling is scored by the log-probability
of everything from the first blank up to the next blank, the `beam_width` best are kept, and each is extended with
every candidate for the next blank; a complete filling's score is the log-probability of the whole text from the
first blank on. So `the ___ ___ on the mat` finds "cat sat" where filling blank 1 by looking only at "the" gave "dog".
The result has the best filling, for each blank its candidates with the other blanks fixed to that filling, and the
best complete sentences, with probabilities normalised over the complete fillings the search kept.

**Speed.** One batched forward pass per blank and beam: the text before the blank is read once and its keys and
values are shared by every candidate (`KVCache.repeat`); the rest is read for all candidates together.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from .errors import PromptError
from .fast.kv_cache import new_cache
from .model import CuteLLM, evaluating
from .tokenizer import Tokenizer

BLANK_RE = re.compile(r"_{3,}")
WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")   # letters, with inner apostrophes ("don't")
MAX_BLANKS = 10
MAX_PHRASE_CHARS = 2_000
MAX_WORDS = 2_000            # words a checkpoint keeps from its corpus
DEFAULT_CANDIDATES = 1_000   # words tried in a blank: the most frequent
DEFAULT_BEAM = 8
TOP_SENTENCES = 3
_TOKENS_PER_PASS = 16_384    # rows of one forward pass x their length: bounds the memory of the logits
_ROWS_PER_PASS = 1_024


@dataclass(frozen=True)
class Candidate:
    word: str
    prob: float              # normalised over the candidate set, the other blanks fixed to the best filling
    log_likelihood: float    # log-probability of the text from this blank on, with this word in it


@dataclass(frozen=True)
class BlankFill:
    index: int               # 0-based position of the blank in the phrase
    candidates: list[Candidate]

    @property
    def best(self) -> Candidate:
        return self.candidates[0]


@dataclass(frozen=True)
class FilledSentence:
    words: tuple[str, ...]   # one word per blank
    text: str
    prob: float              # normalised over the complete fillings the search kept
    log_likelihood: float    # of the text from the first blank on


@dataclass(frozen=True)
class Completion:
    text: str                # the phrase as given
    filled_text: str         # the phrase with every blank filled by the best filling
    blanks: list[BlankFill]
    sentences: list[FilledSentence]   # the best complete fillings, best first

    def segments(self) -> list[tuple[str, bool]]:
        """The filled-in phrase as (text, is_filled_word) pieces, for highlighting the chosen words."""
        pieces = BLANK_RE.split(self.text)
        out = [(pieces[0], False)]
        for blank, piece in zip(self.blanks, pieces[1:]):
            out += [(blank.best.word, True), (piece, False)]
        return [(t, filled) for t, filled in out if t]


def count_blanks(text: str) -> int:
    return len(BLANK_RE.findall(text))


# ---------------------------------------------------------------------------------------------------------------
# Candidate words


def corpus_words(text: str, limit: int = MAX_WORDS) -> list[list]:
    """The `limit` most frequent words of `text` (letters, case kept) with their counts, most frequent first (ties
    alphabetically): [[word, count], ...], plain data for a checkpoint's metadata."""
    counts = Counter(WORD_RE.findall(text))
    return [[w, c] for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def merge_words(*lists: Iterable[Sequence], limit: int = MAX_WORDS) -> list[list]:
    """Word lists added up (a fine-tuned model knows its base's words and its new corpus's), as `corpus_words`."""
    counts: Counter = Counter()
    for words in lists:
        for word, count in words or []:
            counts[word] += int(count)
    return [[w, c] for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def candidate_words(tokenizer: Tokenizer, words: Iterable | None = None, limit: int = DEFAULT_CANDIDATES
                    ) -> list[str]:
    """The words to try in a blank, most frequent first: `words` (a checkpoint's word list) or, for a checkpoint
    without one, what its tokenizer gives (a word model's vocabulary, a BPE model's whole-word tokens, a character
    model's letters). A word model can only say words of its vocabulary, so others are left out."""
    if words:
        pool = [w[0] if isinstance(w, (list, tuple)) else str(w) for w in words]
    else:
        pool = _words_of(tokenizer)
    if tokenizer.kind == "word":
        pool = [w.lower() for w in pool if w.lower() in tokenizer.token_to_id]
    return list(dict.fromkeys(pool))[:limit]


def _words_of(tokenizer: Tokenizer) -> list[str]:
    ids = sorted((i for i in range(tokenizer.vocab_size) if i not in tokenizer.special_ids),
                 key=lambda i: (-tokenizer.counts.get(tokenizer.token(i), 0), i))
    tokens = [tokenizer.token(i) for i in ids]
    if tokenizer.kind == "bpe":  # a word inside a sentence is "·word": its space is part of it
        return [t[1:] for t in tokens if t.startswith("·") and WORD_RE.fullmatch(t[1:])]
    return [t for t in tokens if WORD_RE.fullmatch(t)]


def _end_ids(tokenizer: Tokenizer, after_a_space: bool) -> torch.Tensor | None:
    """The tokens that end what comes before them: those starting with punctuation or a new line (the end of a
    phrase), and with `after_a_space` also those starting with a space (the end of a word, when the next word
    follows). None when no token qualifies, or for word ends in a word model, whose tokens are whole words."""
    if after_a_space and tokenizer.kind == "word":
        return None
    ids = []
    for i in range(tokenizer.vocab_size):
        if i in tokenizer.special_ids:
            continue
        text = tokenizer.decode([i])
        if text and (_ENDS_A_PHRASE.match(text) or (after_a_space and text[0] == " ")):
            ids.append(i)
    return torch.tensor(ids, dtype=torch.long) if ids else None


_ENDS_A_PHRASE = re.compile(r"[\n.!?,;:)\]\"]")


# ---------------------------------------------------------------------------------------------------------------
# Scoring


def _stand_in(tokenizer: Tokenizer) -> str:
    """What a blank with nothing before it follows: sentences in a corpus come after a new line or a full stop. The
    first of those the corpus really contains (a token the model never saw in training would only add noise)."""
    for text in ("\n", ". "):
        ids = tokenizer.encode(text)
        if ids and all(tokenizer.counts.get(tokenizer.token(i), 0) > 0 for i in ids):
            return text
    return ""


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@dataclass
class _Scores:
    exact: torch.Tensor      # (candidates,) log-probability of the scored tokens
    ending: torch.Tensor     # (candidates,) log-probability that an ending token follows the scored text (0 if unused)


def _score(model: CuteLLM, tokenizer: Tokenizer, before: str, words: list[str], after: str,
           end_ids: torch.Tensor | None) -> _Scores:
    """For each word: log p(every token of `before + word + after` that is not a token of `before.rstrip()`), and
    log p(the next token is one of `end_ids`) when they are given."""
    context = before if before.strip() else _stand_in(tokenizer) + before
    prefix = tokenizer.encode(context.rstrip())
    rows = [tokenizer.encode(context + word + after) for word in words]
    starts = [max(1, _common_prefix(row, prefix)) for row in rows]
    block = model.config.block_size
    # Keep at most half the window for the context before the blank when the text is long, then crop every row by
    # the same number of tokens from the left, so the rows still share their beginning.
    keep_context = min(min(starts), block // 2)
    limit = max(min(starts) - keep_context + block, max(starts) + 1)
    truncated = any(len(row) > limit for row in rows)
    rows = [row[:limit] for row in rows]
    crop = max(0, max(len(row) for row in rows) - block)
    rows = [row[crop:] for row in rows]
    starts = [max(1, s - crop) for s in starts]
    exact, end = _batched_log_probs(model, rows, starts, None if truncated else end_ids)
    return _Scores(exact, end)


def _batched_log_probs(model: CuteLLM, rows: list[list[int]], starts: list[int],
                       end_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    shared = min(starts)  # every row begins with these same tokens
    device = model.device
    exact = torch.zeros(len(rows), dtype=torch.float64)
    end = torch.zeros(len(rows), dtype=torch.float64)
    with evaluating(model):
        cache = new_cache(model, 1)
        head, _ = model(torch.tensor([rows[0][:shared]], device=device), cache=cache)
        first = torch.log_softmax(head[0, -1].float(), dim=-1)       # predicts each row's token number `shared`
        lengths = [len(row) for row in rows]
        i = 0
        while i < len(rows):
            width = max(lengths[i:i + _ROWS_PER_PASS]) - shared
            n = max(1, min(_ROWS_PER_PASS, _TOKENS_PER_PASS // max(1, width)))
            chunk = rows[i:i + n]
            lens = torch.tensor(lengths[i:i + n])
            width = int(lens.max()) - shared
            x = torch.zeros((len(chunk), width), dtype=torch.long)   # <pad> after the end: a causal model ignores it
            for r, row in enumerate(chunk):
                x[r, :len(row) - shared] = torch.tensor(row[shared:])
            logits, _ = model(x.to(device), cache=cache.repeat(len(chunk), room=width))
            logp = torch.log_softmax(logits.float(), dim=-1).cpu()    # (rows, width, vocab)
            token_lp = torch.empty((len(chunk), width))
            token_lp[:, 0] = first.cpu()[x[:, 0]]
            if width > 1:
                token_lp[:, 1:] = logp[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1)
            pos = torch.arange(width)[None, :] + shared
            scored = (pos >= torch.tensor(starts[i:i + n])[:, None]) & (pos < lens[:, None])
            exact[i:i + n] = (token_lp.double() * scored).sum(dim=1)
            if end_ids is not None:
                last = logp[torch.arange(len(chunk)), lens - 1 - shared]   # after the last token of each row
                end[i:i + n] = torch.logsumexp(last[:, end_ids].double(), dim=-1)
            i += n
    return exact, end


# ---------------------------------------------------------------------------------------------------------------
# The search


def _check_phrase(text: str, top_k: int, beam_width: int) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        raise PromptError("the phrase is empty: write a sentence with ___ where a word is missing")
    if len(text) > MAX_PHRASE_CHARS:
        raise PromptError(f"the phrase has {len(text):,} characters; the limit is {MAX_PHRASE_CHARS:,}")
    pieces = BLANK_RE.split(text)
    n_blanks = len(pieces) - 1
    if n_blanks == 0:
        raise PromptError("the phrase has no blank: write ___ (three underscores) where a word is missing, "
                          "e.g. 'the cat sat on the ___'")
    if n_blanks > MAX_BLANKS:
        raise PromptError(f"the phrase has {n_blanks} blanks; fill at most {MAX_BLANKS} at a time")
    if not "".join(pieces).strip():
        raise PromptError("the phrase is only blanks: add some words around the ___ so the model has context")
    for i, (before, after) in enumerate(zip(pieces, pieces[1:]), start=1):
        # A blank glued to a letter or digit would join its word onto that one ("the___" -> "thethe"): every
        # candidate then makes the same unknown word, so the scores say nothing. Say so, with the spaced phrase.
        glued = (before[-1:].isalnum(), after[:1].isalnum())
        if any(glued):
            word = (before.split()[-1] if glued[0] else "") + "___" + (after.split()[0] if glued[1] else "")
            spaced = (before.split()[-1] + " " if glued[0] else "") + "___" + (" " + after.split()[0] if glued[1]
                                                                           else "")
            raise PromptError(f"blank {i} is glued to a word ('{word}'): the filled word would join onto it. "
                              f"Blanks stand for whole words; write '{spaced}'")
    if not isinstance(top_k, int) or top_k < 1:
        raise PromptError(f"top_k must be a whole number >= 1, got {top_k!r}")
    if not isinstance(beam_width, int) or beam_width < 1:
        raise PromptError(f"beam_width must be a whole number >= 1, got {beam_width!r}")
    return pieces


def _fill(pieces: list[str], words: Sequence[str]) -> str:
    """The phrase with its first len(words) blanks filled (and the text up to the next blank)."""
    out = [pieces[0]]
    for word, piece in zip(words, pieces[1:]):
        out += [word, piece]
    return "".join(out)


def complete_phrase(model: CuteLLM, tokenizer: Tokenizer, text: str, top_k: int = 5, *,
                    words: Iterable | None = None, beam_width: int = DEFAULT_BEAM,
                    max_candidates: int = DEFAULT_CANDIDATES) -> Completion:
    """Fill each `___` in `text` with a word (see the module docstring for the method).

    `words` is the checkpoint's word list (metadata "words"); without it the tokenizer's words are tried. Returns the
    best filling, the `top_k` candidates per blank (best first) and the best complete sentences.
    """
    pieces = _check_phrase(text, top_k, beam_width)
    n_blanks = len(pieces) - 1
    pool = candidate_words(tokenizer, words, max_candidates)
    if not pool:
        raise PromptError("this model knows no words to try in a blank (its checkpoint has no word list and its "
                          "vocabulary has no whole words)")
    phrase_end, word_end = _end_ids(tokenizer, after_a_space=False), _end_ids(tokenizer, after_a_space=True)

    beams: list[tuple[tuple[str, ...], float, float]] = [((), 0.0, 0.0)]   # (words, exact score, ranking score)
    last_blank: dict[tuple[str, ...], torch.Tensor] = {}   # earlier words -> the last blank's candidate scores
    for b in range(n_blanks):
        last = b == n_blanks - 1
        # Score up to where the next blank's word starts; its leading space belongs to the next step's tokens.
        span = pieces[b + 1] if last else pieces[b + 1].rstrip()
        # Nothing is scored after the word: at the end of the phrase, the phrase must end there; between two blanks,
        # the word must end (the next word's tokens will say so, so this only ranks partial fillings).
        ends = (phrase_end if last else word_end) if not span.strip() else None
        grown = []
        for chosen, score, _ in beams:
            s = _score(model, tokenizer, _fill(pieces, chosen), pool, span, ends)
            if last:
                last_blank[chosen] = s.exact + s.ending
            for w, exact, end in zip(pool, s.exact.tolist(), s.ending.tolist()):
                # At the end of the phrase the word's ending is part of the text's probability; between two blanks
                # the next word's tokens will carry it, so it only ranks partial fillings.
                total = score + exact + (end if last else 0.0)
                grown.append(((*chosen, w), total, total + (0.0 if last else end)))
        grown.sort(key=lambda h: -h[2])
        beams = grown[:beam_width] if not last else grown

    best = beams[0][0]
    finals = beams if n_blanks == 1 else beams[:beam_width]
    sentence_probs = torch.softmax(torch.tensor([h[1] for h in finals], dtype=torch.float64), dim=0)
    sentences = [FilledSentence(words=h[0], text=_fill(pieces, h[0]), prob=float(p), log_likelihood=h[1])
                 for h, p in zip(finals[:TOP_SENTENCES], sentence_probs)]
    fills = [_blank_candidates(model, tokenizer, pieces, best, b, pool, phrase_end, top_k)
             for b in range(n_blanks - 1)]
    fills.append(_ranked(n_blanks - 1, pool, last_blank[best[:-1]], top_k))  # computed by the search's last step
    return Completion(text=text, filled_text=_fill(pieces, best), blanks=fills, sentences=sentences)


def _blank_candidates(model: CuteLLM, tokenizer: Tokenizer, pieces: list[str], best: tuple[str, ...], b: int,
                      pool: list[str], phrase_end: torch.Tensor | None, top_k: int) -> BlankFill:
    """Blank b's candidates with every other blank fixed to the best filling: each scored by the whole text from
    blank b on."""
    before = _fill(pieces[:b + 1], best[:b])
    after = _fill([pieces[b + 1], *pieces[b + 2:]], best[b + 1:])
    s = _score(model, tokenizer, before, pool, after, phrase_end if not after.strip() else None)
    return _ranked(b, pool, s.exact + s.ending, top_k)


def _ranked(b: int, pool: list[str], scores: torch.Tensor, top_k: int) -> BlankFill:
    probs = torch.softmax(scores, dim=0)
    top = torch.topk(probs, min(top_k, len(pool)))
    return BlankFill(index=b, candidates=[Candidate(word=pool[int(i)], prob=float(p), log_likelihood=float(scores[i]))
                                          for p, i in zip(top.values, top.indices)])

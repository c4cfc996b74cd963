"""Tokenizers: text <-> integer ids.

`SimpleWordTokenizer` learns its vocabulary from a corpus (the most frequent words), lower-cases, and gives each
punctuation mark its own token ("mat." -> "mat", "."). `CharTokenizer` uses one token per character, for
character-level corpora such as Shakespeare. Both start with the same special tokens and serialise to a plain dict
(strings and ints only) that lives inside a checkpoint.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable, Mapping

from .errors import CheckpointError, ConfigError

PAD, UNK, MASK = "<pad>", "<unk>", "<mask>"
SPECIAL_TOKENS = (PAD, UNK, MASK)
BLANK = "___"

# A blank (3+ underscores), a literal special token, a word (letters/digits, inner apostrophes: "don't"), or any
# other single visible character (punctuation, symbols, emoji).
_WORD_RE = re.compile(r"_{3,}|<pad>|<unk>|<mask>|[^\W_]+(?:'[^\W_]+)*|\S")
_NO_SPACE_BEFORE = set(".,!?;:)]}%'")
_NO_SPACE_AFTER = set("([{")


class _BaseTokenizer:
    kind: str = ""

    def __init__(self, tokens: list[str], counts: Mapping[str, int] | None = None):
        if list(tokens[: len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
            raise ConfigError(f"a vocabulary must start with the special tokens {SPECIAL_TOKENS}")
        if len(set(tokens)) != len(tokens):
            raise ConfigError("a vocabulary must not contain the same token twice")
        self.id_to_token: list[str] = list(tokens)
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        # How often each token appeared in the corpus the vocabulary was built from (for charts).
        self.counts: dict[str, int] = dict(counts or {})

    pad_id, unk_id, mask_id = 0, 1, 2

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    @property
    def special_ids(self) -> set[int]:
        return {self.pad_id, self.unk_id, self.mask_id}

    def __len__(self) -> int:
        return self.vocab_size

    def tokenize(self, text: str) -> list[str]:
        """Split text into token strings (before looking them up in the vocabulary)."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        return [self.token_to_id.get(t, self.unk_id) for t in self.tokenize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def token(self, token_id: int) -> str:
        return self.id_to_token[token_id]

    def unknown_words(self, text: str) -> list[str]:
        """The distinct pieces of `text` that are not in the vocabulary (they would become <unk>), in order."""
        seen: dict[str, None] = {}
        for t in self.tokenize(text):
            if t not in self.token_to_id and t != BLANK:
                seen.setdefault(t, None)
        return list(seen)

    def unk_rate(self, text: str) -> float:
        """Fraction of the text's tokens that are unknown (0.0 for empty text)."""
        toks = [t for t in self.tokenize(text) if t not in SPECIAL_TOKENS]
        if not toks:
            return 0.0
        return sum(t not in self.token_to_id for t in toks) / len(toks)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokens": list(self.id_to_token),
                "counts": [int(self.counts.get(t, 0)) for t in self.id_to_token]}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class SimpleWordTokenizer(_BaseTokenizer):
    """Word-level tokenizer with a vocabulary of the corpus's most frequent words."""

    kind = "word"

    @classmethod
    def from_text(cls, text: str, vocab_size: int = 1000) -> "SimpleWordTokenizer":
        if vocab_size < len(SPECIAL_TOKENS) + 1:
            raise ConfigError(f"vocab_size: must be at least {len(SPECIAL_TOKENS) + 1}, got {vocab_size}")
        counts = Counter(t for t in cls._split(text) if t not in SPECIAL_TOKENS and t != BLANK)
        # Sort by frequency, then alphabetically, so the same corpus always gives the same ids.
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: vocab_size - len(SPECIAL_TOKENS)]
        return cls([*SPECIAL_TOKENS, *(w for w, _ in ranked)], dict(ranked))

    @staticmethod
    def _split(text: str) -> list[str]:
        return _WORD_RE.findall(text.lower())

    def tokenize(self, text: str) -> list[str]:
        return [MASK if t.startswith(BLANK) else t for t in self._split(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return join_words(self.id_to_token[i] for i in ids)

    def continue_text(self, prompt: str, new_ids: Iterable[int]) -> str:
        """The prompt (lower-cased, unknown words kept as typed) followed by generated tokens, as text."""
        return join_words([*self._split(prompt), *(self.id_to_token[i] for i in new_ids)])


def join_words(tokens: Iterable[str]) -> str:
    """Join word tokens into readable text: punctuation hugs the word before it."""
    out: list[str] = []
    quote_open = False
    glue_next = False
    for tok in tokens:
        if tok == '"':
            quote_open = not quote_open
            if quote_open:
                if out:
                    out.append(" ")
                out.append(tok)
                glue_next = True
            else:
                out.append(tok)
            continue
        if out and not glue_next and tok not in _NO_SPACE_BEFORE:
            out.append(" ")
        out.append(tok)
        glue_next = tok in _NO_SPACE_AFTER
    return "".join(out)


class CharTokenizer(_BaseTokenizer):
    """Character-level tokenizer: every distinct character of the corpus is a token. Case and newlines are kept."""

    kind = "char"

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        counts = Counter(text)
        return cls([*SPECIAL_TOKENS, *sorted(counts)], dict(counts))

    def tokenize(self, text: str) -> list[str]:
        return list(text)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.id_to_token[i] for i in ids)

    def continue_text(self, prompt: str, new_ids: Iterable[int]) -> str:
        return prompt + self.decode(new_ids)


Tokenizer = SimpleWordTokenizer | CharTokenizer
_KINDS = {"word": SimpleWordTokenizer, "char": CharTokenizer}


def tokenizer_from_dict(data: Mapping[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from `to_dict()` output (as stored in a checkpoint)."""
    try:
        cls = _KINDS[data["kind"]]
        tokens = [str(t) for t in data["tokens"]]
        counts = {t: int(c) for t, c in zip(tokens, data.get("counts", [])) if int(c) > 0}
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"the tokenizer data is malformed ({err!r})") from None
    return cls(tokens, counts)


def build_tokenizer(kind: str, text: str, vocab_size: int = 1000) -> Tokenizer:
    """Build a 'word' or 'char' tokenizer from a corpus."""
    if kind == "word":
        return SimpleWordTokenizer.from_text(text, vocab_size)
    if kind == "char":
        return CharTokenizer.from_text(text)
    raise ConfigError(f"tokenizer: must be 'word' or 'char', got {kind!r}")

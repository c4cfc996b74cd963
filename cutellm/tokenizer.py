"""Tokenizers: text <-> integer ids.

`SimpleWordTokenizer` learns its vocabulary from a corpus (the most frequent words), lower-cases, and gives each
punctuation mark its own token ("mat." -> "mat", "."); a word outside the vocabulary becomes <unk>. `CharTokenizer`
uses one token per character, for character-level corpora such as Shakespeare. `BPETokenizer` is byte-level byte-pair
encoding (what real language models use, `cutellm.bpe`): subword tokens learned from the corpus, built up from the
256 byte values, so any text encodes and nothing is ever <unk>. All start with the same special tokens and serialise
to a plain dict (strings and ints only) that lives inside a checkpoint.

A chat model's vocabulary ends with three control tokens more, `CHAT_TOKENS` (`with_chat_tokens`, cutellm.chat): no
text ever encodes to them (typing "<|end|>" gives its characters), so only the chat template can place them.

`token(i)` is a token's readable form, used by every page and chart: for BPE a space shows as `·`, a newline as `↵`,
and a byte that is not a whole printable character as `<0xE2>`.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable, Mapping

from . import bpe
from .errors import CheckpointError, ConfigError

PAD, UNK, MASK = "<pad>", "<unk>", "<mask>"
SPECIAL_TOKENS = (PAD, UNK, MASK)
# A chat's control tokens: who speaks next, and where a message ends (cutellm.chat writes them).
USER, ASSISTANT, END = "<|user|>", "<|assistant|>", "<|end|>"
CHAT_TOKENS = (USER, ASSISTANT, END)
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

    @property
    def has_chat_tokens(self) -> bool:
        return self.id_to_token[-len(CHAT_TOKENS):] == list(CHAT_TOKENS)

    def chat_id(self, token: str) -> int:
        """The id of the control token `token` (one of CHAT_TOKENS); ConfigError for a vocabulary without them."""
        if not self.has_chat_tokens:
            raise ConfigError("this model has no chat tokens: instruction-tune it first (python -m cutellm sft)")
        return self.vocab_size - len(CHAT_TOKENS) + CHAT_TOKENS.index(token)

    def with_chat_tokens(self) -> "Tokenizer":
        """This tokenizer with CHAT_TOKENS appended (ids vocab_size..vocab_size + 2); itself if it has them."""
        if self.has_chat_tokens:
            return self  # type: ignore[return-value]
        return type(self)([*self.id_to_token, *CHAT_TOKENS], self.counts)  # type: ignore[return-value]

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

    def char_offset(self, text: str, ids: list[int], n_tokens: int) -> int:
        """How many characters of `text` come before its `n_tokens`-th token (`ids` is `encode(text)`): where a split
        of the token stream falls in the text, for counting the characters of the validation part."""
        if n_tokens >= len(ids):
            return len(text)
        return len(self.decode(ids[:n_tokens]))

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

    def char_offset(self, text: str, ids: list[int], n_tokens: int) -> int:
        # Decoding would count "<unk>" for an unknown word and normalise spaces: find the token in the text instead.
        for k, match in enumerate(_WORD_RE.finditer(text.lower())):
            if k == n_tokens:
                return match.start()
        return len(text)


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

    def char_offset(self, text: str, ids: list[int], n_tokens: int) -> int:
        return min(n_tokens, len(text))  # one token per character, known or not


# How BPE shows whitespace in a token's readable form.
_BPE_SHOWN = {" ": "·", "\n": "↵", "\t": "⇥"}


def display_bytes(data: bytes) -> str:
    """A BPE token's bytes as readable text: spaces as ·, newlines as ↵, tabs as ⇥, printable characters as
    themselves, and anything else (a control character, or a piece of a multi-byte character) as <0xNN> per byte."""
    out = []
    for ch in data.decode("utf-8", errors="surrogateescape"):  # undecodable bytes become U+DC80..U+DCFF
        if ch in _BPE_SHOWN:
            out.append(_BPE_SHOWN[ch])
        elif "\udc80" <= ch <= "\udcff":
            out.append(f"<0x{ord(ch) - 0xDC00:02X}>")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append("".join(f"<0x{b:02X}>" for b in ch.encode("utf-8")))
    return "".join(out)


class BPETokenizer(_BaseTokenizer):
    """Byte-level BPE: ids 3..258 are the 256 byte values, then one id per merge learned from the corpus.

    Case, spaces and newlines are kept; `___` (a blank) is <mask>; every other string is encoded exactly, so
    `decode(encode(s)) == s` for any s and <unk> never appears. `merges` lists the merges in training order (ids in
    this tokenizer's numbering, with how often each pair occurred).
    """

    kind = "bpe"
    MIN_VOCAB = len(SPECIAL_TOKENS) + bpe.N_BYTES + 1

    def __init__(self, merges: list[bpe.Merge], counts: Mapping[str, int] | None = None,
                 chat: bool = False):
        offset = len(SPECIAL_TOKENS)
        self.merges = list(merges)
        self.token_bytes: list[bytes] = [b""] * offset + [bytes([b]) for b in range(bpe.N_BYTES)]
        for expected, m in enumerate(self.merges, start=offset + bpe.N_BYTES):
            if m.token != expected or not (0 <= m.left < m.token and 0 <= m.right < m.token) \
                    or min(m.left, m.right) < offset:
                raise CheckpointError(f"the BPE merges are malformed (merge {m})")
            self.token_bytes.append(self.token_bytes[m.left] + self.token_bytes[m.right])
        names = list(SPECIAL_TOKENS)
        seen = set(names)
        for i, data in enumerate(self.token_bytes[offset:], start=offset):
            name = display_bytes(data)
            if name in seen:  # two byte strings that read the same (a literal "·" and a space): keep both findable
                name = f"{name}#{i}"
            seen.add(name)
            names.append(name)
        if chat:   # control tokens after the merges; they decode to their names (no text encodes to them)
            self.token_bytes.extend(t.encode() for t in CHAT_TOKENS)
            names.extend(CHAT_TOKENS)
        super().__init__(names, counts)
        self._encoder = bpe.Encoder(self.merges, byte_offset=offset)

    @classmethod
    def from_text(cls, text: str, vocab_size: int = 1000) -> "BPETokenizer":
        if not isinstance(vocab_size, int) or vocab_size < cls.MIN_VOCAB:
            raise ConfigError(f"vocab_size: a BPE vocabulary needs at least {cls.MIN_VOCAB} tokens (3 special tokens, "
                              f"the 256 byte values and 1 merge), got {vocab_size!r}")
        merges = bpe.train_merges(text, vocab_size - len(SPECIAL_TOKENS) - bpe.N_BYTES,
                                  byte_offset=len(SPECIAL_TOKENS))
        tokenizer = cls(merges)
        counts = Counter(tokenizer.encode(text))
        tokenizer.counts = {tokenizer.id_to_token[i]: c for i, c in counts.items()}
        return tokenizer

    def with_chat_tokens(self) -> "BPETokenizer":
        return self if self.has_chat_tokens else BPETokenizer(self.merges, self.counts, chat=True)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for k, piece in enumerate(text.split(BLANK)):
            if k:
                ids.append(self.mask_id)
            ids.extend(self._encoder.encode(piece))
        return ids

    def tokenize(self, text: str) -> list[str]:
        return [self.id_to_token[i] for i in self.encode(text)]

    def decode(self, ids: Iterable[int]) -> str:
        data = b"".join(BLANK.encode() if i == self.mask_id else self.token_bytes[i] for i in ids)
        return data.decode("utf-8", errors="replace")

    def continue_text(self, prompt: str, new_ids: Iterable[int]) -> str:
        return prompt + self.decode(new_ids)

    def unknown_words(self, text: str) -> list[str]:
        return []  # every string is made of bytes, and every byte is a token

    def unk_rate(self, text: str) -> float:
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "merges": [[m.left, m.right, m.count] for m in self.merges],
                "chat": self.has_chat_tokens}

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any], counts: dict[str, int]) -> "BPETokenizer":
        offset = len(SPECIAL_TOKENS) + bpe.N_BYTES
        merges = [bpe.Merge(int(left), int(right), offset + k, int(count))
                  for k, (left, right, count) in enumerate(data["merges"])]
        return cls(merges, counts, chat=bool(data.get("chat", False)))


Tokenizer = SimpleWordTokenizer | CharTokenizer | BPETokenizer
_KINDS = {"word": SimpleWordTokenizer, "char": CharTokenizer, "bpe": BPETokenizer}
TOKENIZER_KINDS = tuple(_KINDS)


def tokenizer_from_dict(data: Mapping[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from `to_dict()` output (as stored in a checkpoint)."""
    try:
        cls = _KINDS[data["kind"]]
        tokens = [str(t) for t in data["tokens"]]
        counts = {t: int(c) for t, c in zip(tokens, data.get("counts", [])) if int(c) > 0}
        if cls is BPETokenizer:
            tokenizer = BPETokenizer._from_dict(data, counts)
            if tokenizer.id_to_token != tokens:
                raise ValueError("its tokens do not match its merges")
            return tokenizer
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"the tokenizer data is malformed ({err!r})") from None
    return cls(tokens, counts)


def build_tokenizer(kind: str, text: str, vocab_size: int = 1000) -> Tokenizer:
    """Build a 'word', 'char' or 'bpe' tokenizer from a corpus (`vocab_size` applies to word and BPE)."""
    if kind == "word":
        return SimpleWordTokenizer.from_text(text, vocab_size)
    if kind == "char":
        return CharTokenizer.from_text(text)
    if kind == "bpe":
        return BPETokenizer.from_text(text, vocab_size)
    raise ConfigError(f"tokenizer: must be one of {', '.join(TOKENIZER_KINDS)}, got {kind!r}")

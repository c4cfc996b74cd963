"""Corpora -> training windows.

A corpus is cleaned (comment lines starting with '#' and blank lines dropped), tokenized into one stream of ids, split
*by position* into train and validation parts (the last `val_fraction` of the stream is validation; windows never
cross the split, so no validation token is ever a training target), and each part is cut into windows of
`block_size + 1` tokens: the first `block_size` are the input, the last `block_size` are the targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import CorpusError
from .tokenizer import Tokenizer

MAX_CORPUS_BYTES = 50 * 1024 * 1024


def clean_corpus(text: str) -> str:
    """Drop '#' comment lines and blank lines; strip trailing spaces."""
    lines = (line.rstrip() for line in text.splitlines())
    return "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith("#"))


def decode_corpus_bytes(data: bytes, name: str = "corpus", max_bytes: int = MAX_CORPUS_BYTES) -> str:
    """Bytes of an uploaded or read file -> text, refusing big or binary files and invalid UTF-8 clearly."""
    if len(data) > max_bytes:
        raise CorpusError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    if not data.strip():
        raise CorpusError(f"{name} is empty")
    if b"\x00" in data[:65536]:
        raise CorpusError(f"{name} looks like a binary file (it contains NUL bytes), not plain text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CorpusError(f"{name} is not valid UTF-8 text (bad byte at position {err.start}); "
                          "save it as UTF-8 and try again") from None
    sample = text[:65536]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f")
    if sample and controls / len(sample) > 0.01:
        raise CorpusError(f"{name} looks like a binary file ({controls} control characters), not plain text")
    return text


def load_corpus(path: str | Path, clean: bool = True) -> str:
    """Read a UTF-8 text corpus. `clean=False` keeps it byte-for-byte (benchmarks compare on the raw text)."""
    p = Path(path)
    if not p.is_file():
        raise CorpusError(f"corpus file '{p}' does not exist")
    text = decode_corpus_bytes(p.read_bytes(), f"'{p}'")
    text = clean_corpus(text) if clean else text
    if not text.strip():
        raise CorpusError(f"'{p}' has no text to train on (after dropping comments and blank lines)")
    return text


def is_evaluation_file(path: str | Path) -> bool:
    """Test sets are named `*_eval.*` (data/blanks_eval.txt): never offered as a corpus, since a model trained on its
    own test set scores well for the wrong reason."""
    return Path(path).stem.endswith("_eval")


def bundled_corpora(folder: str | Path) -> list[str]:
    """The training texts in `folder` (its .txt files, test sets left out), by name."""
    return sorted(p.name for p in Path(folder).glob("*.txt") if not is_evaluation_file(p))


def default_stride(block_size: int) -> int:
    """Windows overlap by half by default: each token is seen at two different positions per epoch, which
    measurably lowers the validation loss of the shipped model (3.19 -> 3.11) for the same number of steps."""
    return max(1, block_size // 2)


def make_windows(ids: torch.Tensor, block_size: int, stride: int | None = None) -> torch.Tensor:
    """Cut a 1-D id tensor into rows of block_size + 1 tokens, starting every `stride` tokens.

    Returns a view (no copy): `unfold` shares memory with `ids`.
    """
    stride = stride or default_stride(block_size)
    if ids.numel() < block_size + 1:
        return ids.new_empty((0, block_size + 1))
    return ids.unfold(0, block_size + 1, stride)


@dataclass
class Dataset:
    """Token ids and windows of one corpus, ready for training."""

    ids: torch.Tensor             # the whole token stream
    train: torch.Tensor           # (n_train, block_size + 1)
    val: torch.Tensor             # (n_val, block_size + 1); may have 0 rows for a tiny corpus
    block_size: int
    n_train_tokens: int
    # Characters of the original text in each part (None when unknown): what turns a loss per token into bits per
    # character, the figure that compares models with different tokenizers.
    train_characters: int | None = None
    val_characters: int | None = None
    # The loss masks of instruction tuning (cutellm.chat), (n_train, block_size) and (n_val, block_size): True where
    # a target counts. None: every target counts, as in pretraining.
    train_mask: torch.Tensor | None = None
    val_mask: torch.Tensor | None = None

    def learned_ids(self) -> torch.Tensor:
        """The training targets the loss counts (the token stream's training part when there is no mask)."""
        if self.train_mask is None:
            return self.ids[:self.n_train_tokens]
        return self.train[:, 1:][self.train_mask]

    @property
    def n_val_tokens(self) -> int:
        return self.ids.numel() - self.n_train_tokens

    def tokens_per_char(self, part: str = "val") -> float | None:
        """Tokens per character of the 'train' or 'val' part's text."""
        chars = self.val_characters if part == "val" else self.train_characters
        tokens = self.n_val_tokens if part == "val" else self.n_train_tokens
        return tokens / chars if chars else None


def inputs_and_targets(windows: torch.Tensor, loss_mask: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows (B, block_size + 1) -> inputs (B, block_size) and targets (B, block_size), the next token at each
    position. A target the `loss_mask` (B, block_size) excludes becomes -1, which the loss ignores."""
    inputs, targets = windows[:, :-1], windows[:, 1:]
    if loss_mask is not None:
        targets = targets.masked_fill(~loss_mask, -1)
    return inputs, targets


def bits_per_char(loss: float | None, tokens_per_char: float | None) -> float | None:
    """A mean loss in nats per token as bits per character of the text: loss x tokens / characters / ln 2.

    A word token stands for ~5 characters and a character token for one, so per-token losses of models with different
    tokenizers are not comparable; per character of the same text they are.
    """
    if loss is None or tokens_per_char is None:
        return None
    return loss * tokens_per_char / math.log(2)


def min_tokens_needed(block_size: int) -> int:
    return block_size + 1


def prepare_dataset(text: str, tokenizer: Tokenizer, block_size: int, *, stride: int | None = None,
                    val_fraction: float = 0.1) -> Dataset:
    """Tokenize `text`, split 90/10 by position (default), and window both parts."""
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    if ids.numel() and bool((ids == tokenizer.unk_id).all()):
        raise CorpusError("none of the corpus's words are in the vocabulary (every token would be <unk>); "
                          "use a larger vocabulary or text in the model's language")
    dataset = split_windows(ids, block_size, stride=stride, val_fraction=val_fraction)
    split = tokenizer.char_offset(text, ids.tolist(), dataset.n_train_tokens)
    dataset.train_characters, dataset.val_characters = split, len(text) - split
    return dataset


def split_windows(ids: torch.Tensor, block_size: int, *, stride: int | None = None,
                  val_fraction: float = 0.1) -> Dataset:
    need = min_tokens_needed(block_size)
    n = ids.numel()
    n_val = int(math.floor(n * val_fraction))
    if n - n_val < need:
        raise CorpusError(
            f"the corpus is too short: it has {n} tokens, and training needs at least {need} "
            f"(one window of block_size {block_size} + 1) in the {100 * (1 - val_fraction):.0f}% training part, "
            f"so about {math.ceil(need / (1 - val_fraction))} tokens in all. Add more text or lower the block size.")
    n_train = n - n_val
    return Dataset(ids=ids, train=make_windows(ids[:n_train], block_size, stride),
                   val=make_windows(ids[n_train:], block_size, stride), block_size=block_size,
                   n_train_tokens=n_train)


@dataclass(frozen=True)
class CorpusStats:
    characters: int
    words: int
    tokens: int
    distinct_tokens: int
    unk_rate: float
    train_windows: int
    val_windows: int

    @property
    def chars_per_token(self) -> float:
        return self.characters / self.tokens if self.tokens else 0.0


def corpus_stats(text: str, tokenizer: Tokenizer, block_size: int, *, stride: int | None = None,
                 val_fraction: float = 0.1) -> CorpusStats:
    """Numbers the Train page shows before training: size, vocabulary, <unk> rate, windows."""
    tokens = tokenizer.tokenize(text)
    n = len(tokens)
    n_val = int(math.floor(n * val_fraction))
    stride = stride or default_stride(block_size)

    def count(length: int) -> int:
        return 0 if length < block_size + 1 else (length - block_size - 1) // stride + 1

    return CorpusStats(characters=len(text), words=len(text.split()), tokens=n, distinct_tokens=len(set(tokens)),
                       unk_rate=tokenizer.unk_rate(text), train_windows=count(n - n_val), val_windows=count(n_val))

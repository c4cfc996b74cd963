"""Byte-pair encoding (BPE), the algorithm: learn merges from a text, then apply them to any text.

1. Text is cut into chunks by GPT-2's rule (`CHUNK_RE`): a word with the space before it, a number, a run of
   punctuation, whitespace. Merges never cross a chunk, so a token never spans two words.
2. Each chunk is a sequence of bytes (its UTF-8 encoding): the 256 byte values are the starting symbols, which is why
   any string can be encoded and nothing is ever unknown.
3. Training repeatedly finds the most frequent pair of adjacent symbols in the corpus and merges it into a new symbol,
   until there are as many merges as asked (or no pair is left). Ties go to the smaller pair of ids, so the same text
   always gives the same merges.
4. Encoding a chunk applies the learned merges in the order they were learned: among the adjacent pairs, the one
   learned first is merged, again and again.

Training counts each distinct chunk once with its number of occurrences and keeps, for every pair, its count and the
chunks it occurs in; after a merge only those chunks are updated (the standard incremental algorithm: recounting
everything after every merge is about a hundred times slower in Python).
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable

# GPT-2's pre-tokenization, written for Python's `re` ([^\W\d_] = a letter): contractions, an optional space then
# letters, digits or other symbols, then whitespace (a run of spaces before a word leaves its last space to the word).
CHUNK_RE = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")
N_BYTES = 256


@dataclass(frozen=True)
class Merge:
    """One learned merge: symbols `left` and `right`, side by side, become symbol `token`."""

    left: int
    right: int
    token: int
    count: int        # how often the pair occurred in the corpus when it was merged


def chunks(text: str) -> list[str]:
    """`text` cut into the pieces merges stay inside; joined back they give `text` exactly."""
    return CHUNK_RE.findall(text)


def _merge_pair(symbols: list[int], left: int, right: int, token: int) -> list[int]:
    out, i, n = [], 0, len(symbols)
    while i < n:
        if i + 1 < n and symbols[i] == left and symbols[i + 1] == right:
            out.append(token)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def train_merges(text: str, n_merges: int, byte_offset: int = 0) -> list[Merge]:
    """Learn up to `n_merges` merges from `text`. Byte b is symbol `byte_offset + b`; the merges' new symbols are
    numbered from `byte_offset + 256` on (a tokenizer puts its special tokens below `byte_offset`)."""
    first_token = byte_offset + N_BYTES
    counted = Counter(chunks(text))
    words = [[byte_offset + b for b in chunk.encode("utf-8")] for chunk in counted]
    freqs = list(counted.values())
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)   # pair -> the words it (may) occur in
    for w, (symbols, freq) in enumerate(zip(words, freqs)):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += freq
            where[pair].add(w)
    # A max-heap by count (ties: the smaller pair first). Counts change as words merge: an entry whose count is no
    # longer the pair's count is stale and skipped; the current count was pushed when it changed.
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[Merge] = []
    while heap and len(merges) < n_merges:
        neg_count, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count <= 0 or count != -neg_count:
            continue
        token = first_token + len(merges)
        merges.append(Merge(pair[0], pair[1], token, count))
        changed: set[tuple[int, int]] = set()
        for w in where.pop(pair):
            symbols, freq = words[w], freqs[w]
            merged = _merge_pair(symbols, pair[0], pair[1], token)
            if len(merged) == len(symbols):
                continue  # the pair left this word in an earlier merge
            for old in zip(symbols, symbols[1:]):
                pair_counts[old] -= freq
                changed.add(old)
            for new in zip(merged, merged[1:]):
                pair_counts[new] += freq
                where[new].add(w)
                changed.add(new)
            words[w] = merged
        pair_counts.pop(pair, None)
        changed.discard(pair)
        for p in changed:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
            else:
                del pair_counts[p]
    return merges


class Encoder:
    """Applies learned merges to text, caching each distinct chunk's symbols (text repeats its words a lot)."""

    def __init__(self, merges: Iterable[Merge], byte_offset: int = 0):
        self.ranks = {(m.left, m.right): (rank, m.token) for rank, m in enumerate(merges)}
        self.byte_offset = byte_offset
        self._cache: dict[str, list[int]] = {}

    def encode_chunk(self, chunk: str) -> list[int]:
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        symbols = [self.byte_offset + b for b in chunk.encode("utf-8")]
        ranks = self.ranks
        while len(symbols) > 1:
            # The adjacent pair learned first; merging it everywhere in the chunk repeats training's step.
            best = min(zip(symbols, symbols[1:]), key=lambda p: ranks.get(p, (len(ranks),))[0])
            found = ranks.get(best)
            if found is None:
                break
            symbols = _merge_pair(symbols, best[0], best[1], found[1])
        if len(self._cache) < 100_000:  # bounded: a long stream of unique junk must not eat memory
            self._cache[chunk] = symbols
        return symbols

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for chunk in chunks(text):
            out.extend(self.encode_chunk(chunk))
        return out

"""Byte-level BPE: the merge algorithm against a plain recount, exact round trips on any text, no <unk>, determinism,
readable token forms, and a BPE model saved and loaded with identical logits."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from cutellm import load_checkpoint, load_corpus, save_checkpoint
from cutellm.bpe import Encoder, chunks, train_merges
from cutellm.tokenizer import BLANK, BPETokenizer, build_tokenizer, display_bytes, tokenizer_from_dict

from conftest import CORPUS, TINY_MODEL, TINY_TEXT, TINY_TRAIN


def naive_merges(text: str, n: int) -> tuple[list[tuple[int, int, int]], dict[str, tuple[int, ...]]]:
    """BPE the slow, obvious way: recount every pair after every merge; ties go to the smaller pair. Returns the
    merges (left, right, count) and each chunk's symbols at the end."""
    final = {chunk: tuple(chunk.encode()) for chunk in chunks(text)}
    words = Counter(tuple(chunk.encode()) for chunk in chunks(text))
    merges = []
    for k in range(n):
        pairs = Counter()
        for word, freq in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += freq
        if not pairs:
            break
        pair = min(pairs, key=lambda p: (-pairs[p], p))
        token = 256 + k
        merges.append((*pair, pairs[pair]))
        merged = Counter()
        for word, freq in words.items():
            out, i = [], 0
            while i < len(word):
                if word[i:i + 2] == pair:
                    out.append(token)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += freq
            final.update({c: tuple(out) for c, w in final.items() if w == word})
        words = merged
    return merges, final


def random_text(rng: random.Random, n: int) -> str:
    """Any Unicode: ASCII, accents, emoji, CJK, Arabic, control characters, whitespace runs, underscores."""
    pools = ["abcdefghij ABC", "  \n\t", "éèçñß", "🐱🐶🦊✨", "猫が座った", "مرحبا", "\x00\x07\x1b", "___", ".,!?'\""]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(n))


@pytest.fixture(scope="module")
def corpus() -> str:
    return load_corpus(CORPUS)


@pytest.fixture(scope="module")
def bpe(corpus) -> BPETokenizer:
    return build_tokenizer("bpe", corpus, 600)


def test_incremental_training_equals_a_plain_recount():
    text = TINY_TEXT + " The catalogue of cats: catastrophic! " * 7
    merges = train_merges(text, 60)
    expected, final = naive_merges(text, 60)
    assert [(m.left, m.right, m.count) for m in merges] == expected
    # Encoding applies the merges as training did: every chunk ends as the symbols training left it with.
    encoder = Encoder(merges)
    assert all(tuple(encoder.encode_chunk(chunk)) == symbols for chunk, symbols in final.items())


def test_chunks_cover_the_text_and_never_join_words():
    rng = random.Random(0)
    for _ in range(200):
        text = random_text(rng, rng.randint(0, 60))
        assert "".join(chunks(text)) == text
    assert chunks("the cat  sat.\n") == ["the", " cat", " ", " sat", ".", "\n"]


def test_round_trip_on_random_unicode_and_no_unk(bpe):
    rng = random.Random(1)
    for _ in range(300):
        text = random_text(rng, rng.randint(1, 80))
        ids = bpe.encode(text)
        assert bpe.decode(ids) == text, repr(text)
        assert bpe.unk_id not in ids
        assert bpe.unknown_words(text) == [] and bpe.unk_rate(text) == 0.0


def test_round_trip_on_the_corpus_and_blanks(bpe, corpus):
    assert bpe.decode(bpe.encode(corpus)) == corpus
    ids = bpe.encode("the ___ sat on the ____ mat")
    assert ids.count(bpe.mask_id) == 2  # "____" is a blank followed by an underscore
    assert bpe.decode(ids) == "the ___ sat on the ____ mat"
    assert BLANK not in bpe.decode([i for i in ids if i != bpe.mask_id])


def test_frequent_words_are_one_token_with_their_space(bpe):
    assert [bpe.token(i) for i in bpe.encode(" the cat sat")] == ["·the", "·cat", "·sat"]
    assert len(bpe.encode(" astronaut")) > 1  # a word the corpus never uses is spelled from pieces


def test_training_is_deterministic_and_sized(corpus):
    a, b = build_tokenizer("bpe", corpus, 400), build_tokenizer("bpe", corpus, 400)
    assert a.merges == b.merges and a.id_to_token == b.id_to_token
    assert a.vocab_size == 400 and len(a.merges) == 400 - 259
    # Merges are in training order: counts never increase, and each builds on tokens that exist before it.
    counts = [m.count for m in a.merges]
    assert counts == sorted(counts, reverse=True)
    assert all(m.left < m.token and m.right < m.token for m in a.merges)


def test_a_tiny_corpus_stops_when_no_pair_is_left():
    tok = build_tokenizer("bpe", "ab ab", 1000)
    assert tok.vocab_size == 261 and [tok.token(m.token) for m in tok.merges] == ["ab", "·ab"]


def test_readable_forms():
    assert display_bytes(b" the") == "·the"
    assert display_bytes("é".encode()) == "é"
    assert display_bytes("€".encode()[:1]) == "<0xE2>"
    assert display_bytes(b"\n\t\x00") == "↵⇥<0x00>"
    tok = build_tokenizer("bpe", TINY_TEXT, 300)
    assert tok.token(tok.encode("€")[0]) == "<0xE2>"
    assert len(set(tok.id_to_token)) == tok.vocab_size  # every readable form names one token


def test_dict_round_trip_is_plain_and_exact(bpe):
    data = bpe.to_dict()
    assert data["kind"] == "bpe" and all(isinstance(x, int) for merge in data["merges"] for x in merge)
    again = tokenizer_from_dict(data)
    assert again.merges == bpe.merges and again.id_to_token == bpe.id_to_token and again.counts == bpe.counts
    text = "Tom and Anna saw a zebra 🦓 at the zoo."
    assert again.encode(text) == bpe.encode(text)


def test_checkpoint_round_trip_gives_identical_logits(tmp_path):
    from cutellm import prepare_training, train
    from dataclasses import replace

    model, tok, ds = prepare_training(TINY_TEXT, replace(TINY_MODEL, vocab_size=300), replace(TINY_TRAIN, max_steps=20),
                                      tokenizer_kind="bpe")
    train(model, ds, replace(TINY_TRAIN, max_steps=20))
    path = save_checkpoint(tmp_path / "bpe.pth", model, tok)
    loaded, tok2 = load_checkpoint(path)  # weights_only=True inside
    assert isinstance(tok2, BPETokenizer) and tok2.merges == tok.merges
    idx = torch.tensor([tok.encode("the cat sat on the mat")])
    model.eval()
    torch.testing.assert_close(loaded(idx)[0], model(idx)[0], atol=0, rtol=0)


def test_encoder_caches_but_stays_exact():
    enc = Encoder(train_merges(TINY_TEXT, 30))
    first = enc.encode(TINY_TEXT)
    assert enc.encode(TINY_TEXT) == first

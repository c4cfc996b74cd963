import pytest

from cutellm import CharTokenizer, SimpleWordTokenizer, build_tokenizer, tokenizer_from_dict
from cutellm.tokenizer import MASK, PAD, UNK

TEXT = "The cat sat on the mat. The dog sat on the log! Is it? Yes, it is."


def test_vocabulary_is_built_from_the_corpus_by_frequency():
    tok = SimpleWordTokenizer.from_text(TEXT, vocab_size=8)
    assert tok.id_to_token[:3] == [PAD, UNK, MASK]
    assert tok.vocab_size == 8
    # "the" (4 times) is the most frequent word, then "." / "on" / "sat" (2 each, ties broken alphabetically)
    assert tok.id_to_token[3] == "the"
    assert tok.counts["the"] == 4


def test_lowercases_and_splits_punctuation():
    tok = SimpleWordTokenizer.from_text(TEXT)
    assert tok.tokenize("The MAT.") == ["the", "mat", "."]
    assert tok.tokenize("don't stop!") == ["don't", "stop", "!"]


def test_round_trip_of_known_text():
    tok = SimpleWordTokenizer.from_text(TEXT)
    text = "the cat sat on the mat. is it? yes, it is."
    assert tok.decode(tok.encode(text)) == text


def test_blank_becomes_mask_and_unknown_becomes_unk():
    tok = SimpleWordTokenizer.from_text(TEXT)
    ids = tok.encode("the ___ sat on the zebra")
    assert ids[1] == tok.mask_id
    assert ids[-1] == tok.unk_id
    assert tok.unknown_words("the ___ sat on the zebra and the yak") == ["zebra", "and", "yak"]


def test_unk_rate():
    tok = SimpleWordTokenizer.from_text(TEXT)
    assert tok.unk_rate("the cat sat") == 0.0
    assert tok.unk_rate("the zebra") == pytest.approx(0.5)
    assert tok.unk_rate("") == 0.0


@pytest.mark.parametrize("kind", ["word", "char"])
def test_dict_round_trip(kind):
    tok = build_tokenizer(kind, TEXT, 20)
    again = tokenizer_from_dict(tok.to_dict())
    assert type(again) is type(tok)
    assert again.id_to_token == tok.id_to_token
    assert again.encode(TEXT) == tok.encode(TEXT)
    assert again.counts == tok.counts


def test_char_tokenizer_keeps_case_and_newlines():
    tok = CharTokenizer.from_text("Ab\nba")
    assert tok.decode(tok.encode("Ab\nba")) == "Ab\nba"
    assert tok.encode("z") == [tok.unk_id]
    assert tok.continue_text("Ab", tok.encode("\nb")) == "Ab\nb"


def test_continue_text_keeps_the_prompt_words():
    tok = SimpleWordTokenizer.from_text(TEXT)
    assert tok.continue_text("The zebra", tok.encode("sat on the mat.")) == "the zebra sat on the mat."

import pytest

from cutellm import complete_phrase


def test_final_blank_ranks_mat_first(tiny):
    model, tok, _, _ = tiny
    result = complete_phrase(model, tok, "the cat sat on the ___", top_k=5)
    assert result.blanks[0].best.word == "mat"
    assert result.filled_text == "the cat sat on the mat"


def test_middle_blank_uses_the_words_after_it(tiny):
    """'the ___' alone could be cat, dog or bird; only 'sat on the mat' after the blank makes it 'cat'."""
    model, tok, _, _ = tiny
    result = complete_phrase(model, tok, "the ___ sat on the mat", top_k=5)
    assert result.blanks[0].best.word == "cat"
    result = complete_phrase(model, tok, "the ___ ran to the park", top_k=5)
    assert result.blanks[0].best.word == "dog"


def test_probabilities_are_normalised_and_ranked(tiny):
    model, tok, _, _ = tiny
    blank = complete_phrase(model, tok, "the bird sang in the ___", top_k=tok.vocab_size).blanks[0]
    probs = [c.prob for c in blank.candidates]
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert probs == sorted(probs, reverse=True)
    assert all(c.word not in ("<pad>", "<unk>", "<mask>", ".") for c in blank.candidates)


def test_several_blanks_left_to_right(tiny):
    model, tok, _, _ = tiny
    result = complete_phrase(model, tok, "the ___ sat on the ___. the dog ran to the ___.", top_k=3)
    assert [b.best.word for b in result.blanks] == ["cat", "mat", "park"]
    assert result.filled_text == "the cat sat on the mat. the dog ran to the park."


def test_blank_glued_to_punctuation_and_at_the_start(tiny):
    model, tok, _, _ = tiny
    assert complete_phrase(model, tok, "the cat sat on the ___.").blanks[0].best.word == "mat"
    assert complete_phrase(model, tok, "___ cat sat on the mat").blanks[0].best.word == "the"

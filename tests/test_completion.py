"""Filling blanks with words for word, char and BPE models: whole-sentence scores, the joint search over several
blanks, normalisation, how length is paid for, and the word lists checkpoints carry."""

from __future__ import annotations

import math

import pytest
import torch

from cutellm import ModelConfig, TrainConfig, complete_phrase, prepare_run, prepare_training, train
from cutellm.completion import WORD_RE, candidate_words, corpus_words, merge_words
from cutellm.lab.runs import BaseModel

TEXT = "the cat sat on the mat. ma said hi. the elephant sat on the rug. an owl flew home. the dog ran to the park. " * 30
WORDS = corpus_words(TEXT)
SHAPE = ModelConfig(vocab_size=300, d_model=64, n_heads=4, n_layers=2, block_size=32, dropout=0.0)
RECIPE = TrainConfig(max_steps=300, batch_size=16, learning_rate=1e-2, warmup_steps=20, seed=0)


@pytest.fixture(scope="module", params=["word", "char", "bpe"])
def trained(request):
    model, tokenizer, dataset = prepare_training(TEXT, SHAPE, RECIPE, tokenizer_kind=request.param)
    train(model, dataset, RECIPE)
    return model.eval(), tokenizer


def test_candidates_are_whole_words_whatever_the_tokenizer(trained):
    model, tok = trained
    result = complete_phrase(model, tok, "the cat sat on the ___", top_k=10, words=WORDS)
    assert result.filled_text == "the cat sat on the mat"
    assert all(WORD_RE.fullmatch(c.word) for c in result.blanks[0].candidates)
    assert len({c.word for c in result.blanks[0].candidates}) == 10


def test_two_blanks_are_searched_jointly(trained):
    model, tok = trained
    result = complete_phrase(model, tok, "the ___ ___ on the mat", words=WORDS)
    assert [b.best.word for b in result.blanks] == ["cat", "sat"]
    assert result.sentences[0].text == "the cat sat on the mat" and result.sentences[0].words == ("cat", "sat")


def test_a_long_word_pays_for_its_tokens_and_still_wins_when_the_text_needs_it(trained):
    model, tok = trained
    if tok.kind == "word":
        pytest.skip("a word model's candidates are one token each")
    result = complete_phrase(model, tok, "the ___ sat on the rug", words=WORDS)
    best = result.blanks[0].best
    assert best.word == "elephant" and len(tok.encode(" elephant")) > 1
    # Its score is the sum of the log-probabilities of every token from the word on, computed here by hand.
    ids = tok.encode("the elephant sat on the rug")
    start = len(tok.encode("the"))
    with torch.inference_mode():
        logp = torch.log_softmax(model(torch.tensor([ids]))[0][0].double(), dim=-1)
    by_hand = sum(float(logp[t - 1, ids[t]]) for t in range(start, len(ids)))
    assert best.log_likelihood == pytest.approx(by_hand, abs=1e-3)


def test_at_the_end_of_a_phrase_the_phrase_must_end_with_the_word(trained):
    # "ma" is a word of the corpus and the start of "mat": a shorter candidate is always at least as likely as a
    # longer one it begins, unless the text after it counts. At the end of a phrase that is "the phrase ends here".
    model, tok = trained
    candidates = {c.word: c.prob for c in complete_phrase(model, tok, "the cat sat on the ___", top_k=50,
                                                          words=WORDS).blanks[0].candidates}
    assert candidates["mat"] > 10 * candidates.get("ma", 0.0)


def test_joint_search_scores_at_least_as_high_as_left_to_right():
    text = ("the dog ran to the park. " * 3 + "the cat sat on the mat. ") * 30   # "the" is followed by "dog" most
    model, tok, ds = prepare_training(text, ModelConfig(vocab_size=300, d_model=48, n_heads=4, n_layers=2,
                                                        block_size=16, dropout=0.0), RECIPE)
    train(model, ds, RECIPE)
    left_to_right = complete_phrase(model, tok, "the ___ ___ on the mat", beam_width=1)
    joint = complete_phrase(model, tok, "the ___ ___ on the mat")
    assert left_to_right.filled_text == "the dog sat on the mat"   # blank 1 chosen looking only at "the"
    assert joint.filled_text == "the cat sat on the mat"
    assert joint.sentences[0].log_likelihood >= left_to_right.sentences[0].log_likelihood


def test_probabilities_are_normalised_over_the_candidates(trained):
    model, tok = trained
    pool = candidate_words(tok, WORDS)
    result = complete_phrase(model, tok, "the ___ ran to the ___.", top_k=len(pool), words=WORDS)
    for blank in result.blanks:
        probs = [c.prob for c in blank.candidates]
        assert len(probs) == len(pool) and sum(probs) == pytest.approx(1.0, abs=1e-6)
        assert probs == sorted(probs, reverse=True)
    sentence_probs = [s.prob for s in result.sentences]
    assert len(sentence_probs) == 3 and sum(sentence_probs) <= 1 + 1e-9 and sentence_probs == sorted(sentence_probs,
                                                                                                       reverse=True)
    # The best sentence is the best filling, and its probability is never above its log-likelihood's share.
    assert result.sentences[0].text == result.filled_text and math.isfinite(result.sentences[0].log_likelihood)


def test_blanks_glued_to_punctuation_and_at_the_start(tiny):
    model, tok, _, _ = tiny
    assert complete_phrase(model, tok, "the cat sat on the ___.").blanks[0].best.word == "mat"
    assert complete_phrase(model, tok, "___ cat sat on the mat").blanks[0].best.word == "the"
    result = complete_phrase(model, tok, "the ___ sat on the ___. the dog ran to the ___.", top_k=3)
    assert result.filled_text == "the cat sat on the mat. the dog ran to the park."


def test_a_checkpoint_without_a_word_list_falls_back_to_its_tokenizer():
    word = prepare_training(TEXT, SHAPE, RECIPE, tokenizer_kind="word")[1]
    bpe = prepare_training(TEXT, SHAPE, RECIPE, tokenizer_kind="bpe")[1]
    char = prepare_training(TEXT, SHAPE, RECIPE, tokenizer_kind="char")[1]
    assert candidate_words(word)[:2] == ["the", "on"] and "." not in candidate_words(word)  # by frequency
    assert {"the", "dog"} <= set(candidate_words(bpe)) and all(WORD_RE.fullmatch(w) for w in candidate_words(bpe))
    assert set(candidate_words(char)) <= set("abcdefghijklmnopqrstuvwxyz")   # letters are all a char model gives
    # A word model can only say words of its vocabulary.
    assert "zebra" not in candidate_words(word, [["zebra", 99], ["cat", 3]]) == ["cat"]


def test_every_run_records_its_corpus_words_and_a_fine_tune_adds_its_own():
    text = "The cat sat. The cat ran to the mat. " * 20          # 40 "The", 40 "cat", 20 "the", 20 "sat"...
    run = prepare_run(text, "t.txt", SHAPE, RECIPE)
    assert run.metadata["words"] == [["The", 40], ["cat", 40], ["mat", 20], ["ran", 20], ["sat", 20], ["the", 20],
                                     ["to", 20]] == corpus_words(text)
    base = BaseModel("base", run.model, run.tokenizer, {"words": run.metadata["words"]})
    tuned = prepare_run("the zebra ate the hay. " * 30, "new.txt", SHAPE, RECIPE, base=base)
    words = dict((w, c) for w, c in tuned.metadata["words"])
    assert (words["the"], words["zebra"], words["cat"]) == (20 + 60, 30, 40)
    assert merge_words([["a", 1]], [["a", 2], ["b", 5]]) == [["b", 5], ["a", 3]]

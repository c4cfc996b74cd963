import math

import pytest
import torch

from cutellm import CharTokenizer, SimpleWordTokenizer, prepare_dataset
from cutellm.data import bits_per_char, clean_corpus, corpus_stats, make_windows


def test_clean_drops_comments_and_blank_lines():
    assert clean_corpus("# title\nthe cat.\n\n   \n  # note\nthe dog.  \n") == "the cat.\nthe dog."


def test_windows_are_views_of_block_plus_one_tokens():
    ids = torch.arange(20)
    w = make_windows(ids, block_size=4, stride=4)
    assert w.shape == (4, 5)
    assert w[1].tolist() == [4, 5, 6, 7, 8]
    assert w.data_ptr() == ids.data_ptr()  # no copy
    assert make_windows(ids, 4, stride=2).shape == (8, 5)
    assert make_windows(ids, 4).shape == (8, 5)  # default: half-overlapping


def test_split_is_by_position_without_leakage():
    text = " ".join(f"w{i}" for i in range(200))
    tok = SimpleWordTokenizer.from_text(text, 300)
    ds = prepare_dataset(text, tok, block_size=8, val_fraction=0.1)
    assert ds.n_train_tokens == 180 and ds.n_val_tokens == 20
    train_ids = set(ds.train.flatten().tolist())
    val_ids = set(ds.val.flatten().tolist())
    assert not train_ids & val_ids
    # validation windows come from the end of the stream, training windows from the rest
    assert train_ids <= set(ds.ids[:180].tolist()) and val_ids <= set(ds.ids[180:].tolist())


def test_corpus_stats():
    text = "the cat sat on the mat. " * 20
    tok = SimpleWordTokenizer.from_text(text, 5)  # 3 special tokens + "the" (40x) + "." (20x, first of the ties)
    stats = corpus_stats(text, tok, block_size=10)
    assert stats.words == 120 and stats.tokens == 140
    assert stats.unk_rate == pytest.approx(80 / 140)
    ds = prepare_dataset(text, tok, 10)
    assert (stats.train_windows, stats.val_windows) == (ds.train.size(0), ds.val.size(0))


def test_bits_per_character_is_the_hand_computation():
    text = "the cat. " * 30                                   # 270 characters; 3 word tokens per 9 characters
    tok = SimpleWordTokenizer.from_text(text, 10)
    ds = prepare_dataset(text, tok, block_size=4)
    # 90 tokens: the last 10% (9 tokens, "the cat. " x 3 = 27 characters) is validation.
    assert (ds.n_val_tokens, ds.val_characters, ds.train_characters) == (9, 27, 243)
    assert ds.tokens_per_char("val") == pytest.approx(9 / 27)
    assert bits_per_char(1.2, ds.tokens_per_char("val")) == pytest.approx(1.2 * 9 / 27 / math.log(2))
    # One character per token: bits per character is the loss in bits.
    chars = prepare_dataset(text, CharTokenizer.from_text(text), block_size=4)
    assert chars.tokens_per_char("val") == 1.0 and bits_per_char(2.0, 1.0) == pytest.approx(2 / math.log(2))
    assert bits_per_char(None, 0.3) is None and bits_per_char(1.0, None) is None


def test_a_run_records_its_validation_loss_in_bits_per_character(tiny):
    _, _, dataset, result = tiny
    expected = result.final_val_loss * dataset.n_val_tokens / dataset.val_characters / math.log(2)
    assert result.final_val_bits_per_char == pytest.approx(expected)
    assert result.summary()["final_val_bits_per_char"] == pytest.approx(expected)


def test_test_sets_are_never_offered_as_corpora(tmp_path):
    from pathlib import Path

    from cutellm.data import bundled_corpora, is_evaluation_file

    for name in ("b.txt", "a.txt", "blanks_eval.txt", "chat_eval.txt", "notes.md"):
        (tmp_path / name).write_text("the cat sat on the mat")
    assert bundled_corpora(tmp_path) == ["a.txt", "b.txt"]
    assert is_evaluation_file("data/blanks_eval.txt") and not is_evaluation_file("data/evaluation_notes.txt")
    shipped = bundled_corpora(Path(__file__).resolve().parent.parent / "data")
    assert "training_data.txt" in shipped and "blanks_eval.txt" not in shipped

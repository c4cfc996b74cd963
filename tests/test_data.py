import pytest
import torch

from cutellm import SimpleWordTokenizer, prepare_dataset
from cutellm.data import clean_corpus, corpus_stats, make_windows


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

import pytest
import torch

from cutellm import CorpusError, SimpleWordTokenizer, load_corpus, prepare_dataset
from cutellm.data import clean_corpus, corpus_stats, decode_corpus_bytes, make_windows


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


def test_too_short_corpus_says_how_much_is_needed():
    tok = SimpleWordTokenizer.from_text("the cat sat", 10)
    with pytest.raises(CorpusError, match=r"has 3 tokens.*at least 21"):
        prepare_dataset("the cat sat", tok, block_size=20)


def test_corpus_stats():
    text = "the cat sat on the mat. " * 20
    tok = SimpleWordTokenizer.from_text(text, 5)  # 3 special tokens + "the" (40x) + "." (20x, first of the ties)
    stats = corpus_stats(text, tok, block_size=10)
    assert stats.words == 120 and stats.tokens == 140
    assert stats.unk_rate == pytest.approx(80 / 140)
    ds = prepare_dataset(text, tok, 10)
    assert (stats.train_windows, stats.val_windows) == (ds.train.size(0), ds.val.size(0))


def test_load_corpus_errors(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(CorpusError, match="no text"):
        load_corpus(empty)
    png = tmp_path / "image.txt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(CorpusError, match="binary"):
        load_corpus(png)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(CorpusError, match="UTF-8"):
        load_corpus(latin)
    with pytest.raises(CorpusError, match="binary"):
        decode_corpus_bytes(b"\x01\x02\x03\x04abc" * 10)

"""Every bad input a learner can give, and the documented exception (and message) the core answers with.

One table per kind of input. The app shows these messages with st.error/st.warning (tests/app/test_bad_inputs.py).
"""

from __future__ import annotations

import math
import os
import pickle
import re
from dataclasses import replace

import pytest
import torch

from cutellm import (CheckpointError, ConfigError, CorpusError, GenerationError, ModelConfig, PromptError, TrainConfig,
                     TrainingDivergedError, build_tokenizer, complete_phrase, generate, load_checkpoint,
                     prepare_training, sample_generate, save_checkpoint, stream_generate, tokenizer_from_dict, train)
from cutellm.checkpoint import checkpoint_payload
from cutellm.data import decode_corpus_bytes, load_corpus, prepare_dataset
from cutellm.lab.evaluation import load_blanks_file
from cutellm.lab.model_files import model_path
from cutellm.sampling import SamplingSettings
from cutellm.tokenizer import SimpleWordTokenizer
from cutellm.training import evaluate

from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN

# --------------------------------------------------------------------------------------------------------------
# Prompts

BAD_PROMPTS = [
    ("empty", "", "empty"),
    ("whitespace only", "  \t\n  ", "empty"),
    ("only unknown words", "zebra quokka axolotl", "vocabulary"),
    ("100,000 characters", "the cat " * 12_500, "limit"),
    ("only emoji", "🐱 🐶 🦊", "vocabulary"),
    ("only a non-Latin script", "猫が座った", "vocabulary"),
]


@pytest.mark.parametrize("case, prompt, message", BAD_PROMPTS, ids=[c[0] for c in BAD_PROMPTS])
def test_bad_prompts(tiny, case, prompt, message):
    model, tok, _, _ = tiny
    with pytest.raises(PromptError, match=message):
        generate(model, tok, prompt, 3)


ODD_BUT_FINE_PROMPTS = [
    ("emoji among words", "the cat 🐱 sat on the"),
    ("non-Latin among words", "the 猫 cat sat on the"),
    ("control characters", "the\x00 cat\x07 sat\x1b on the"),
    ("HTML/script tags", "<script>alert('x')</script> the cat sat on the"),
    ("Markdown/LaTeX", "**the** $x^2$ cat :smile: sat on the"),
]


@pytest.mark.parametrize("case, prompt", ODD_BUT_FINE_PROMPTS, ids=[c[0] for c in ODD_BUT_FINE_PROMPTS])
def test_odd_prompts_are_read_not_refused(tiny, case, prompt):
    model, tok, _, _ = tiny
    # The odd pieces are read as <unk>; the known words around them still lead the model to "mat".
    assert [t.text for t in stream_generate(model, tok, prompt, 2)] == ["mat", "."]
    assert generate(model, tok, prompt, 2).endswith(" on the mat.")


# --------------------------------------------------------------------------------------------------------------
# Generation settings (temperature 0 is not an error: it means greedy, by design)

BAD_SETTINGS = [
    ("max tokens 0", dict(max_new_tokens=0), "at least 1"),
    ("max tokens negative", dict(max_new_tokens=-3), "at least 1"),
    ("max tokens huge", dict(max_new_tokens=10**9), "capped at 1000"),
    ("temperature negative", dict(temperature=-0.5), "temperature"),
    ("temperature absurd", dict(temperature=1e6), "temperature"),
    ("temperature not a number", dict(temperature=float("nan")), "temperature"),
    ("top-k 0", dict(top_k=0), "top-k"),
    ("top-k above vocabulary", dict(top_k=100_000), "top-k"),
    ("top-p 0", dict(top_p=0.0), "top-p"),
    ("top-p above 1", dict(top_p=1.5), "top-p"),
    ("seed not a whole number", dict(seed=1.5), "seed"),
]


@pytest.mark.parametrize("case, settings, message", BAD_SETTINGS, ids=[c[0] for c in BAD_SETTINGS])
def test_bad_generation_settings(tiny, case, settings, message):
    model, tok, _, _ = tiny
    fields = dict(settings)
    max_new_tokens = fields.pop("max_new_tokens", 5)
    sampling = SamplingSettings(**{"temperature": 1.0, **fields})
    with pytest.raises(GenerationError, match=message):
        sample_generate(model, tok, "the cat", max_new_tokens, sampling=sampling)


# --------------------------------------------------------------------------------------------------------------
# Blanks

BAD_PHRASES = [
    ("no blank", "the cat sat on the mat", "no blank"),
    ("only a blank", "___", "only blanks"),
    ("only blanks", "___ ___", "only blanks"),
    ("eleven blanks", " ".join(["the ___"] * 11), "at most 10"),
    ("empty", "", "empty"),
    ("blank glued after a word", "the cat sat on the___", r"blank 1 is glued to a word \('the___'\).*write 'the ___'"),
    ("blank glued before a word", "the ___ sat on ___mat", r"blank 2 is glued to a word \('___mat'\).*'___ mat'"),
]


@pytest.mark.parametrize("case, phrase, message", BAD_PHRASES, ids=[c[0] for c in BAD_PHRASES])
def test_bad_phrases(tiny, case, phrase, message):
    model, tok, _, _ = tiny
    with pytest.raises(PromptError, match=message):
        complete_phrase(model, tok, phrase)


@pytest.mark.parametrize("phrase, blanks", [(" ".join(["the ___ sat on the ___."] * 5), 10),
                                            ("the cat sat on the ___.", 1), ("the cat sat on the ___!!", 1)])
def test_edge_phrases_work(tiny, phrase, blanks):
    model, tok, _, _ = tiny
    assert len(complete_phrase(model, tok, phrase).blanks) == blanks


@pytest.mark.parametrize("case, content, message", [
    ("missing file", None, "does not exist"),
    ("no phrases", "# only a comment\n", "no phrases"),
    ("no answers", "the cat sat on the ___\n", "line 1: expected 'phrase with ___ | answers'"),
    ("no blank", "the cat sat | mat\n", "line 1: the phrase has no ___"),
    ("answers for the wrong number of blanks", "the ___ sat on the ___ | cat\n", "2 blank(s) but 1 group"),
], ids=["missing file", "no phrases", "no answers", "no blank", "answers for the wrong number of blanks"])
def test_bad_blank_evaluation_files(tmp_path, case, content, message):
    path = tmp_path / "phrases.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CorpusError, match=re.escape(message)):
        load_blanks_file(path)


# --------------------------------------------------------------------------------------------------------------
# Corpora

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 4


@pytest.mark.parametrize("case, data, message", [
    ("empty file", b"", "empty"),
    ("only whitespace", b"   \n\n\t", "empty"),
    ("PNG renamed .txt", PNG, "binary"),
    ("invalid UTF-8", "caf\xe9 cr\xe8me".encode("latin-1"), "UTF-8"),
    ("above the upload limit", b"word " * 300_000, "limit"),
], ids=["empty file", "only whitespace", "PNG renamed .txt", "invalid UTF-8", "above the upload limit"])
def test_bad_corpus_files(case, data, message):
    with pytest.raises(CorpusError, match=message):
        decode_corpus_bytes(data, "upload.txt", max_bytes=1_000_000)


@pytest.mark.parametrize("case, content, message", [
    ("missing file", None, "does not exist"),
    ("only comments", b"# only comments\n\n# here\n", "no text"),
    ("PNG renamed .txt", PNG, "binary"),
    ("Latin-1 text", "caf\xe9 au lait".encode("latin-1"), "UTF-8"),
    ("control characters", b"\x01\x02\x03\x04abc" * 10, "binary"),
], ids=["missing file", "only comments", "PNG renamed .txt", "Latin-1 text", "control characters"])
def test_bad_corpus_files_on_disk(tmp_path, case, content, message):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        load_corpus(path)


def test_corpus_shorter_than_one_window_says_how_much_is_needed():
    tok = SimpleWordTokenizer.from_text("the cat sat", 10)
    with pytest.raises(CorpusError, match=r"too short: it has 3 tokens.*at least 21"):
        prepare_dataset("the cat sat", tok, block_size=20)


def test_corpus_entirely_unknown_to_the_vocabulary():
    tok = SimpleWordTokenizer.from_text("the cat sat on the mat", 10)
    with pytest.raises(CorpusError, match="none of the corpus's words"):
        prepare_dataset("zebra quokka axolotl " * 50, tok, block_size=8)


# --------------------------------------------------------------------------------------------------------------
# Hyperparameters

@pytest.mark.parametrize("case, make, message", [
    ("d_model not divisible by heads", lambda: ModelConfig(d_model=100, n_heads=3), "divisible"),
    ("dropout above 1", lambda: ModelConfig(dropout=1.5), "dropout"),
    ("zero layers", lambda: ModelConfig(n_layers=0), "n_layers"),
    ("zero heads", lambda: ModelConfig(n_heads=0), "n_heads"),
    ("block size 1", lambda: ModelConfig(block_size=1), "block_size"),
    ("learning rate 0", lambda: TrainConfig(learning_rate=0.0), "learning_rate"),
    ("learning rate absurd", lambda: TrainConfig(learning_rate=1e6), "learning_rate"),
    ("batch size 0", lambda: TrainConfig(batch_size=0), "batch_size"),
    ("negative epochs", lambda: TrainConfig(epochs=-1), "epochs"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_bad_hyperparameters(case, make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_block_size_larger_than_the_corpus():
    with pytest.raises(CorpusError, match="lower the block size"):
        prepare_training(TINY_TEXT[:300], ModelConfig(vocab_size=50, d_model=16, n_heads=2, n_layers=1,
                                                      block_size=200), TrainConfig())


def test_batch_larger_than_the_windows_trains_with_all_of_them():
    model, tok, ds = prepare_training(TINY_TEXT[:600], TINY_MODEL, TINY_TRAIN)
    assert ds.train.size(0) < 512
    result = train(model, ds, TrainConfig(batch_size=512, max_steps=3))
    assert result.steps == 3 and result.global_batch_size == ds.train.size(0)


def test_high_learning_rate_stops_as_diverged_and_keeps_good_weights():
    model, tok, ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
    with pytest.raises(TrainingDivergedError, match="exploded|NaN|inf") as info:
        train(model, ds, replace(TINY_TRAIN, learning_rate=10.0))
    assert "learning rate" in str(info.value) and info.value.result.status == "diverged"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # The kept weights still give a sane loss, and the model still generates.
    assert evaluate(model, ds.train, 16, 2) < 3 * math.log(model.config.vocab_size)
    generate(model, tok, "the cat", 3)


# --------------------------------------------------------------------------------------------------------------
# Tokenizers

@pytest.mark.parametrize("case, make, error, message", [
    ("unknown kind", lambda: build_tokenizer("morse", TINY_TEXT), ConfigError, "tokenizer"),
    ("vocabulary of 2", lambda: SimpleWordTokenizer.from_text(TINY_TEXT, vocab_size=2), ConfigError, "vocab_size"),
    ("malformed saved tokenizer", lambda: tokenizer_from_dict({"kind": "word"}), CheckpointError, "malformed"),
], ids=["unknown kind", "vocabulary of 2", "malformed saved tokenizer"])
def test_bad_tokenizers(case, make, error, message):
    with pytest.raises(error, match=message):
        make()


# --------------------------------------------------------------------------------------------------------------
# Checkpoints

class _RunsCode:
    """A pickle that would create a file when unpickled: a safe load must refuse it before it runs."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _bad_checkpoints(tiny, folder) -> dict[str, str]:
    """Broken checkpoint files in `folder`, name -> the message loading it must give."""
    model, tok, _, _ = tiny
    good = save_checkpoint(folder / "good.pth", model, tok)
    (folder / "truncated.pth").write_bytes(good.read_bytes()[:5000])
    (folder / "random.pth").write_bytes(os.urandom(10_000))
    (folder / "empty.pth").write_bytes(b"")
    (folder / "text.pth").write_text("hello world\n")
    torch.save({"format": "cutegpt-checkpoint", "x": _RunsCode()}, folder / "code.pth")
    (folder / "pickle.pth").write_bytes(pickle.dumps(_RunsCode()))
    torch.save({"weights": torch.zeros(3)}, folder / "foreign.pth")
    payload = checkpoint_payload(model, tok)
    payload["tokenizer"] = SimpleWordTokenizer.from_text("a completely different small vocabulary of words", 8).to_dict()
    torch.save(payload, folder / "other_vocab.pth")
    payload = checkpoint_payload(model, tok)
    payload["state_dict"]["tok_emb.weight"] = torch.zeros(5, model.config.d_model)
    torch.save(payload, folder / "shape.pth")
    (folder / "folder.pth").mkdir()
    return {"truncated": "cannot be loaded: the file is truncated or corrupt", "random": "cannot be loaded",
            "empty": "cannot be loaded", "text": "cannot be loaded", "code": "refuses", "pickle": "cannot be loaded",
            "foreign": "not a CuteGPT checkpoint", "other_vocab": "tokenizer has 8 tokens",
            "shape": "does not match its own model config", "folder": "is a folder", "missing": "does not exist"}


def test_bad_checkpoint_files(tiny, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setattr(_RunsCode, "marker", str(marker))
    for name, message in _bad_checkpoints(tiny, tmp_path).items():
        with pytest.raises(CheckpointError, match=message) as info:
            load_checkpoint(tmp_path / f"{name}.pth")
        assert f"{name}.pth" in str(info.value), "the message names the file"
    assert not marker.exists(), "a refused pickle must never run"


@pytest.mark.parametrize("name", ["../../etc/x", "a/b", "a\\b", "", " ", "x.pth", "dots.in.name", "a" * 65,
                                  "new\nline", "..", "~root"])
def test_bad_save_names(tmp_path, name):
    with pytest.raises(CheckpointError, match="not a valid model name"):
        model_path(tmp_path, name)


def test_good_save_name(tmp_path):
    assert model_path(tmp_path, "my-model_2") == tmp_path / "my-model_2.pth"

"""The model in models/ is what every page uses the moment the app opens: it must load and be as good as README says."""

import re

import pytest

from cutellm import complete_phrase, generate, load_checkpoint, load_corpus, prepare_dataset
from cutellm.training import evaluate

from conftest import CORPUS, ROOT, SHIPPED_MODEL

SHIPPED_BPE = ROOT / "models" / "cute_bpe.pth"
ROUNDING = 0.0005  # README gives losses to 3 decimals


def readme_figure(name: str, column: int = 0) -> float:
    """The number in README's "| name | words | subwords |" row of the shipped models' table."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^\|\s*{name}\s*\|(.*)\|\s*$", text, flags=re.M)
    assert match, f"README has no '| {name} | ...' row"
    cell = match.group(1).split("|")[column]
    return float(re.search(r"[0-9.]+", cell.replace(",", "")).group(0))


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(SHIPPED_MODEL, with_meta=True)


def test_shipped_model_is_small_and_loads(shipped):
    model, tok, meta = shipped
    assert SHIPPED_MODEL.stat().st_size < 10 * 1024 * 1024
    assert tok.kind == "word" and tok.vocab_size == 1000
    assert meta["corpus"] == "training_data.txt" and meta["status"] == "finished"


def test_validation_loss_is_at_most_what_readme_states(shipped):
    model, tok, meta = shipped
    dataset = prepare_dataset(load_corpus(CORPUS), tok, model.config.block_size)
    val_loss = evaluate(model, dataset.val, batch_size=64)
    assert val_loss <= readme_figure("validation loss") + ROUNDING
    assert val_loss == pytest.approx(meta["final_val_loss"], abs=1e-4)


def test_shipped_subword_model_is_small_and_as_good_as_readme_says():
    model, tok, meta = load_checkpoint(SHIPPED_BPE, with_meta=True)
    assert SHIPPED_BPE.stat().st_size < 10 * 1024 * 1024
    assert tok.kind == "bpe" and meta["corpus"] == "training_data.txt" and meta["status"] == "finished"
    text = load_corpus(CORPUS)
    dataset = prepare_dataset(text, tok, model.config.block_size)
    val_loss = evaluate(model, dataset.val, batch_size=64)
    assert val_loss <= readme_figure("validation loss", column=1) + ROUNDING
    assert val_loss == pytest.approx(meta["final_val_loss"], abs=1e-4)
    assert meta["final_val_bits_per_char"] <= readme_figure("validation bits per character", column=1) + ROUNDING
    # blanks work for a subword model too, from the word list the checkpoint carries
    assert meta["words"] and complete_phrase(model, tok, "the cow eats ___", words=meta["words"]).blanks[0].best.word


def test_shipped_model_knows_its_corpus(shipped):
    model, tok, _ = shipped
    assert generate(model, tok, "the cat sat on the", 1) == "the cat sat on the mat"
    assert complete_phrase(model, tok, "the ___ sat on the mat").blanks[0].best.word == "cat"
    assert complete_phrase(model, tok, "the cow eats ___").blanks[0].best.word == "grass"


def test_corpus_is_large_enough():
    assert len(CORPUS.read_text().split()) >= 40_000

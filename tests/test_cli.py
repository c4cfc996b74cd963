import re

import pytest

from cutellm import load_checkpoint
from cutellm.__main__ import main

from conftest import TINY_TEXT


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    corpus = d / "corpus.txt"
    corpus.write_text("# a comment line\n" + TINY_TEXT + "\n")
    out = d / "model.pth"
    rc = main(["--env-file", str(d / "none.env"), "train", "--corpus", str(corpus), "--out", str(out),
               "--steps", "250", "--d-model", "48", "--n-heads", "4", "--block-size", "16", "--lr", "0.01",
               "--batch-size", "16", "--dropout", "0", "--log-every", "1000"])
    assert rc == 0
    return out


def test_train_writes_a_checkpoint(trained, capsys):
    assert trained.exists()


def test_generate(trained, capsys):
    assert main(["generate", "--model", str(trained), "the cat sat on the", "-n", "2", "--probs"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the cat sat on the mat.")
    assert "p=" in out


def test_complete(trained, capsys):
    assert main(["complete", "--model", str(trained), "the ___ sat on the mat"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "the cat sat on the mat"


def test_inspect(trained, capsys):
    assert main(["inspect", "--model", str(trained), "--prompt", "the dog ran to the"]) == 0
    out = capsys.readouterr().out
    assert "parameters" in out and "corpus.txt" in out and "'park'" in out
    assert re.search(r"final_val_bits_per_char +0\.\d+", out)


def test_train_a_bpe_model_from_the_env_file(tmp_path, capsys):
    (tmp_path / ".env").write_text("MODEL_TOKENIZER=bpe\nMODEL_VOCAB_SIZE=300\n")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    out = tmp_path / "bpe.pth"
    assert main(["--env-file", str(tmp_path / ".env"), "train", "--corpus", str(corpus), "--out", str(out),
                 "--steps", "30", "--d-model", "32", "--block-size", "16", "--log-every", "1000"]) == 0
    assert "bits/char" in capsys.readouterr().out
    _, tokenizer, meta = load_checkpoint(out, with_meta=True)
    assert tokenizer.kind == "bpe" == meta["tokenizer_kind"] and tokenizer.vocab_size <= 300
    assert meta["final_val_bits_per_char"] > 0
    assert main(["generate", "--model", str(out), "The cat 🐱 sat", "-n", "5"]) == 0
    generated = capsys.readouterr()
    assert generated.out.startswith("The cat 🐱 sat") and "vocabulary" not in generated.err  # no <unk> note


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["generate", "--model", str(tmp_path / "missing.pth")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err and "Traceback" not in err
    (tmp_path / ".env").write_text("MODEL_N_HEADS=3\n")
    assert main(["--env-file", str(tmp_path / ".env"), "train", "--steps", "1"]) == 2
    assert "MODEL_N_HEADS" in capsys.readouterr().err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("train", "sft", "chat", "evaluate-chat", "generate", "complete", "inspect"):
        assert cmd in out


def test_train_a_llama_block_from_flags(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    out = tmp_path / "llama.pth"
    assert main(["--env-file", str(tmp_path / "none.env"), "train", "--corpus", str(corpus), "--out", str(out),
                 "--steps", "20", "--d-model", "32", "--block-size", "16", "--log-every", "1000", "--positions", "rope",
                 "--norm", "rmsnorm", "--mlp", "swiglu", "--no-tie-weights"]) == 0
    model, _ = load_checkpoint(out)
    assert (model.config.positions, model.config.norm, model.config.mlp, model.config.tie_weights) == \
        ("rope", "rmsnorm", "swiglu", False)
    capsys.readouterr()
    assert main(["generate", "--model", str(out), "the cat", "-n", "3"]) == 0
    assert capsys.readouterr().out.startswith("the cat")
    # RoPE with an odd head size stops before training, with the reason and a size that works.
    assert main(["--env-file", str(tmp_path / "none.env"), "train", "--corpus", str(corpus), "--steps", "1",
                 "--positions", "rope", "--d-model", "36"]) == 2
    assert "must be even; try d_model 32" in capsys.readouterr().err


def test_train_from_a_preset_with_flags_on_top(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    out = tmp_path / "chat_base.pth"
    assert main(["--env-file", str(tmp_path / "none.env"), "train", "--preset", "chat", "--corpus", str(corpus),
                 "--out", str(out), "--steps", "3", "--block-size", "16", "--log-every", "1000"]) == 0
    model, tokenizer, meta = load_checkpoint(out, with_meta=True)
    # The chat preset's shape and tokenizer, the flag's context and steps.
    assert (tokenizer.kind, model.config.d_model, model.config.positions, model.config.block_size) == \
        ("word", 128, "rope", 16)
    assert meta["steps"] == 3 and meta["train_config"]["learning_rate"] == 4e-3

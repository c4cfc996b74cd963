"""Fine-tuning, run records, the training timeline (weight snapshots) and the non-causal experiment."""

from __future__ import annotations

import math
import random

import pytest
import torch

from cutellm import (ModelConfig, TrainConfig, generate, load_checkpoint, prepare_finetuning, prepare_training,
                     save_checkpoint, train)
from cutellm.__main__ import main
from cutellm.views.charts import runs_figure
from cutellm.views.inspection import embedding_pca
from cutellm.lab.runs import Run, differing_columns, distinguishing_labels, lineage, runs_table
from cutellm.training import evaluate, snapshot_steps

from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN

NEW_TEXT = " ".join(["the cow sat on the tree.", "the sun ran to the mat.", "a bird eats the park."] * 30)


def test_finetuning_lowers_the_new_texts_loss_and_leaves_the_base_alone(tiny, tmp_path):
    base, tok, _, _ = tiny
    before = {k: v.clone() for k, v in base.state_dict().items()}
    cfg = TrainConfig(max_steps=60, batch_size=16, learning_rate=5e-3, warmup_steps=5, seed=0)
    model, tok2, ds = prepare_finetuning(NEW_TEXT, base, tok, cfg)
    assert tok2 is tok and model is not base and model.config == base.config
    loss_before = evaluate(model, ds.train, 16)
    train(model, ds, cfg)
    assert evaluate(model, ds.train, 16) < loss_before * 0.7
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())  # the base model is unchanged
    path = save_checkpoint(tmp_path / "ft.pth", model, tok)
    loaded, tok3 = load_checkpoint(path)
    assert generate(loaded, tok3, "the cow sat on the", 1) == "the cow sat on the tree"


def test_cli_fine_tune_keeps_the_lineage(tiny, tmp_path, capsys):
    base, tok, _, result = tiny
    base_path = save_checkpoint(tmp_path / "base.pth", base, tok, {"corpus": "tiny.txt", **result.summary()})
    corpus = tmp_path / "new.txt"
    corpus.write_text(NEW_TEXT)
    out = tmp_path / "ft.pth"
    assert main(["--env-file", str(tmp_path / "none"), "train", "--init-from", str(base_path), "--corpus",
                 str(corpus), "--out", str(out), "--steps", "20", "--d-model", "64"]) == 0
    _, _, meta = load_checkpoint(out, with_meta=True)
    assert meta["base_model"] == "base" and meta["corpus"] == "new.txt" and meta["steps"] == 20
    assert [r["corpus"] for r in lineage(meta)] == ["tiny.txt", "new.txt"]
    assert lineage(meta)[0]["steps"] == 300


def test_snapshots_are_spaced_over_the_run():
    model, tok, ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
    cfg = TrainConfig(**{**TINY_TRAIN.to_dict(), "max_steps": 40, "snapshots": 8})
    result = train(model, ds, cfg)
    steps = [s.step for s in result.snapshots]
    assert len(steps) == 8 and steps[0] == 0 and steps[-1] == 40 and steps == sorted(steps)
    first = result.snapshots[0].to_model(model.config)
    last = result.snapshots[-1].to_model(model.config)
    idx = torch.tensor([tok.encode("the cat sat on the")])
    torch.testing.assert_close(last(idx)[0], model(idx)[0])  # the last snapshot is the final model
    assert not torch.allclose(first(idx)[0], model(idx)[0])


def test_snapshot_memory_cap_and_early_stop():
    model, tok, ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    capped = TrainConfig(**{**TINY_TRAIN.to_dict(), "max_steps": 40, "snapshots": 8, "snapshot_max_bytes": 3 * size})
    assert len(snapshot_steps(40, capped, model)) == 3
    assert snapshot_steps(40, TrainConfig(snapshots=8, snapshot_max_bytes=size // 2), model) == set()
    assert snapshot_steps(40, TrainConfig(), model) == set()

    import threading
    stop = threading.Event()
    result = train(model, ds, TrainConfig(**{**capped.to_dict(), "snapshot_max_bytes": 64 << 20}),
                   on_step=lambda m: stop.set() if m.step == 7 else None, stop_event=stop)
    assert [s.step for s in result.snapshots][-1] == 7  # the timeline ends where the run stopped


def test_timeline_pca_axes_are_shared(tiny):
    model, tok, _, _ = tiny
    torch.manual_seed(0)
    from cutellm import CuteLLM
    early = CuteLLM(model.config).eval()
    plain = embedding_pca(model, tok)
    same = embedding_pca(model, tok, reference=model)
    assert plain[["x", "y"]].equals(same[["x", "y"]])
    moved = embedding_pca(early, tok, reference=model)
    assert moved.shape == plain.shape and not moved[["x", "y"]].equals(plain[["x", "y"]])


def test_runs_table_and_figure(tiny):
    model, tok, _, result = tiny
    meta = {"corpus": "tiny", "tokenizer_kind": "word", "train_config": TINY_TRAIN.to_dict(), **result.summary()}
    other = {**meta, "train_config": {**TINY_TRAIN.to_dict(), "learning_rate": 0.001}, "final_val_loss": 1.5}
    runs = [Run("a", meta, model.config.to_dict()), Run("b", other, model.config.to_dict())]
    table = runs_table(runs)
    assert list(table["run"]) == ["a", "b"] and table.loc[1, "val loss"] == 1.5
    assert set(differing_columns(table)) == {"learning rate", "val loss"}
    fig = runs_figure(runs)
    assert [t.name for t in fig.data] == ["a · train", "a · validation", "b · train", "b · validation"]
    # The legend says what sets each run apart: its settings, not its results.
    assert distinguishing_labels(runs) == ["a · learning rate 0.01", "b · learning rate 0.001"]


def test_runs_show_the_blocks_design_and_old_checkpoints_read_as_gpt2():
    old = Run("old", {"tokenizer_kind": "word"}, {"d_model": 128})   # saved before the block options existed
    llama = Run("llama", {"tokenizer_kind": "word"}, {"d_model": 128, "positions": "rope", "norm": "rmsnorm",
                                                       "mlp": "swiglu", "tie_weights": False})
    table = runs_table([old, llama])
    assert list(table.loc[0, ["positions", "norm", "mlp", "tied head"]]) == ["learned", "layernorm", "gelu", True]
    assert set(differing_columns(table)) == {"positions", "norm", "mlp", "tied head"}
    assert distinguishing_labels([old, llama])[1] == "llama · positions rope, norm rmsnorm, mlp swiglu, tied head False"


def test_runs_with_different_tokenizers_compare_in_bits_per_character():
    curve = [[1, 4.0, None], [2, 3.0, 2.5]]
    word = Run("word", {"tokenizer_kind": "word", "loss_curve": curve, "train_tokens_per_char": 0.25,
                        "val_tokens_per_char": 0.2, "final_val_bits_per_char": 0.7215})
    char = Run("char", {"tokenizer_kind": "char", "loss_curve": curve, "train_tokens_per_char": 1.0,
                        "val_tokens_per_char": 1.0})
    old = Run("old", {"tokenizer_kind": "word", "loss_curve": curve})  # saved before tokens per character existed
    ln2 = math.log(2)
    assert word.curve_in_bits_per_char == [(1, pytest.approx(4.0 * 0.25 / ln2), None),
                                           (2, pytest.approx(3.0 * 0.25 / ln2), pytest.approx(2.5 * 0.2 / ln2))]
    assert char.curve_in_bits_per_char[1][2] == pytest.approx(2.5 / ln2) and old.curve_in_bits_per_char == []
    fig = runs_figure([word, char, old], bits_per_char=True)
    assert [t.name for t in fig.data] == ["word · train", "word · validation", "char · train", "char · validation"]
    assert fig.data[1].y[0] == pytest.approx(2.5 * 0.2 / ln2) and "bits per character" in fig.layout.yaxis.title.text
    table = runs_table([word, char])
    assert list(table["val bits/char"].fillna(-1)) == [0.722, -1] and "tokenizer" in differing_columns(table)


def test_training_without_the_causal_mask_cheats():
    """On random words, a causal model cannot beat guessing; one that sees the future copies the answer."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(30)]
    text = " ".join(rng.choice(words) for _ in range(3000))
    losses = {}
    for causal in (True, False):
        cfg = ModelConfig(vocab_size=40, d_model=32, n_heads=2, n_layers=1, block_size=16, dropout=0.0, causal=causal)
        tc = TrainConfig(max_steps=150, batch_size=16, learning_rate=5e-3, warmup_steps=10, seed=0)
        model, tok, ds = prepare_training(text, cfg, tc)
        losses[causal] = train(model, ds, tc).final_train_loss
    assert losses[True] > 3.0  # about log(30): nothing to learn
    assert losses[False] < 1.0  # it reads the next word instead of predicting it

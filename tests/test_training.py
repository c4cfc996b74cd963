from dataclasses import replace

import threading

import pytest
import torch

from cutellm import TrainConfig, TrainingDivergedError, prepare_training, train
from cutellm.training import lr_at

from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN


def test_tiny_model_overfits_tiny_corpus(tiny):
    _, _, _, result = tiny
    assert result.status == "finished" and result.steps == 300
    assert result.final_train_loss < 0.1
    first = result.history[0].train_loss
    assert first > 3.0  # starts near log(vocab)


def test_callback_receives_every_step_with_metrics():
    seen = []
    model, tok, ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
    cfg = replace(TINY_TRAIN, max_steps=25, eval_interval=10)
    train(model, ds, cfg, on_step=seen.append)
    assert [m.step for m in seen] == list(range(1, 26))
    assert [m.step for m in seen if m.val_loss is not None] == [10, 20, 25]
    assert all(m.tokens_per_s > 0 and m.lr > 0 and m.epoch >= 1 for m in seen)
    assert seen[-1].total_steps == 25


def test_same_seed_same_result():
    losses = []
    for _ in range(2):
        model, tok, ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
        cfg = replace(TINY_TRAIN, max_steps=30)
        losses.append([m.train_loss for m in train(model, ds, cfg).history])
    assert losses[0] == losses[1]


def test_stop_event_ends_training_and_keeps_weights():
    model, tok, ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
    stop = threading.Event()

    def on_step(m):
        if m.step == 7:
            stop.set()

    before = model.tok_emb.weight.detach().clone()
    result = train(model, ds, TINY_TRAIN, on_step=on_step, stop_event=stop)
    assert result.status == "stopped" and result.steps == 7
    assert not torch.equal(before, model.tok_emb.weight)  # the 7 steps were kept
    assert result.final_train_loss is not None and result.final_val_loss is not None


def test_divergence_stops_with_clear_error_and_keeps_last_good_weights():
    model, tok, ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
    cfg = replace(TINY_TRAIN, max_steps=50)
    snapshots = {}

    def on_step(m):
        snapshots[m.step] = [p.detach().clone() for p in model.parameters()]
        if m.step == 5:  # corrupt the weights as a wild update would
            with torch.no_grad():
                model.blocks[0].mlp.fc.weight.fill_(float("nan"))

    with pytest.raises(TrainingDivergedError, match="became NaN") as info:
        train(model, ds, cfg, on_step=on_step)
    assert info.value.result.status == "diverged"
    # the weights are those that gave the last finite loss: the ones after step 4 (used by step 5)
    for p, saved in zip(model.parameters(), snapshots[4]):
        assert torch.equal(p, saved)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_learning_rate_schedule():
    cfg = TrainConfig(learning_rate=1e-3, min_lr_ratio=0.1, warmup_steps=100)
    assert lr_at(0, 2000, cfg) == pytest.approx(1e-3 / 101)
    assert lr_at(99, 2000, cfg) == pytest.approx(1e-3 * 100 / 101)
    assert lr_at(100, 2000, cfg) == pytest.approx(1e-3)
    assert lr_at(1999, 2000, cfg) == pytest.approx(1e-4, rel=1e-3)
    assert lr_at(10, 50, cfg) < 1e-3  # warmup capped at a tenth of a short run...
    assert lr_at(5, 50, cfg) == pytest.approx(1e-3)  # ...so it reaches the full rate

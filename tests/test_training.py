from dataclasses import replace

import math
import threading
import time

import pytest
import torch

from cutellm import TrainConfig, TrainingDivergedError, prepare_training, train
from cutellm import training
from cutellm.training import batch_plan, evaluate, lr_at, make_optimizer, train_step
from cutellm.devices import resolve_precision

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


def test_the_wall_time_splits_into_steps_evaluations_and_the_callback():
    model, tok, ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
    cfg = replace(TINY_TRAIN, max_steps=12, eval_interval=4)
    result = train(model, ds, cfg, on_step=lambda m: time.sleep(0.02))   # 12 callbacks of at least 20 ms each
    assert result.steps_time_s > 0 and result.eval_time_s > 0
    assert result.steps_time_s == pytest.approx(sum(cfg.batch_size * ds.block_size / m.tokens_per_s
                                                    for m in result.history))
    # The callbacks' time is in neither part: at least 12 x 20 ms of the wall time is left over.
    assert result.wall_time_s - result.steps_time_s - result.eval_time_s >= 12 * 0.02
    # Step by step: each step's own time, and each evaluation's on the step it followed (4, 8, 12).
    assert [m.step for m in result.history if m.eval_time_s is not None] == [4, 8, 12]
    assert sum(m.step_time_s for m in result.history) == pytest.approx(result.steps_time_s)
    periodic = sum(m.eval_time_s or 0 for m in result.history)
    assert result.final_eval_time_s > 0 and periodic + result.final_eval_time_s == pytest.approx(result.eval_time_s)
    summary = result.summary()
    assert summary["steps_time_s"] == round(result.steps_time_s, 3) and summary["eval_time_s"] > 0
    assert len(summary["step_times_s"]) == 12 and all(t > 0 for t in summary["step_times_s"])
    assert [step for step, _ in summary["eval_times_s"]] == [4, 8, 12]
    assert sum(t for _, t in summary["eval_times_s"]) == pytest.approx(periodic, abs=1e-4)
    assert summary["final_eval_time_s"] == round(result.final_eval_time_s, 3)


@pytest.mark.parametrize("mlp", ["gelu", "swiglu"])
def test_evaluation_reads_many_windows_a_pass_and_keeps_every_tensor_within_its_budget(monkeypatch, mlp):
    # The MLP's hidden layer (GELU: 4 x 48 = 192; SwiGLU: gate and value of 128 each) is wider than the vocabulary (64).
    model, tok, ds = prepare_training(TINY_TEXT, replace(TINY_MODEL, mlp=mlp, block_size=8), TINY_TRAIN)
    windows = torch.cat([ds.train] * 20)   # plenty of windows
    hidden = 2 * model.config.mlp_width if mlp == "swiglu" else model.config.mlp_width
    assert hidden > model.config.vocab_size
    monkeypatch.setattr(training, "EVAL_TENSOR_BUDGET", 8 * 30 * hidden)   # 30 windows' hidden layer
    widest, passes = [0], []
    hooks = [m.register_forward_hook(lambda _, args, out: widest.__setitem__(0, max(
        widest[0], *(t.numel() for t in (out if isinstance(out, tuple) else (out,)) if torch.is_tensor(t)))))
        for m in model.modules()]
    hooks.append(model.register_forward_hook(lambda _, args, out: passes.append(args[0].size(0))))
    loss = evaluate(model, windows, batch_size=4)
    for h in hooks:
        h.remove()
    assert passes[0] == 30 and sum(passes) == windows.size(0)    # 30 windows a pass, not 4
    assert widest[0] <= training.EVAL_TENSOR_BUDGET
    assert loss == pytest.approx(evaluate(model, windows, batch_size=4, chunk_size=4), rel=1e-5)


def test_same_seed_same_result():
    losses, weights = [], []
    for _ in range(2):
        model, tok, ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
        cfg = replace(TINY_TRAIN, max_steps=30)
        losses.append([m.train_loss for m in train(model, ds, cfg).history])
        weights.append(model.state_dict())
    assert losses[0] == losses[1]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_train_is_a_loop_of_train_steps():
    # Dropout draws random numbers, two epochs draw two window orders: the loop must draw them all alike.
    shape = replace(TINY_MODEL, dropout=0.1)
    cfg = replace(TINY_TRAIN, max_steps=None, epochs=2, eval_interval=5, grad_accum_steps=2)
    model, _, ds = prepare_training(TINY_TEXT, shape, cfg)
    result = train(model, ds, cfg)

    by_hand, _, ds = prepare_training(TINY_TEXT, shape, cfg)
    torch.manual_seed(cfg.seed)                       # dropout masks, as train() seeds them
    gen = torch.Generator().manual_seed(cfg.seed)     # window order
    plan = batch_plan(ds.train.size(0), cfg)
    optimizer = make_optimizer(by_hand, cfg)
    precision = resolve_precision(cfg.precision, "cpu")   # bf16 on a CPU with bf16 instructions, as train() picks
    by_hand.train()
    losses = []
    for step in range(plan.total_steps):
        pos = (step % plan.steps_per_epoch) * plan.global_batch
        if pos == 0:
            order = torch.randperm(ds.train.size(0), generator=gen)
        rows = order[pos:pos + plan.global_batch]
        out = train_step(by_hand, optimizer, ds.train, rows, plan, cfg, step, precision=precision)
        assert out.lr == lr_at(step, plan.total_steps, cfg) and out.grad_norm > 0
        losses.append(out.loss)
    assert plan.steps_per_epoch > 1 and len(losses) == 2 * plan.steps_per_epoch
    assert losses == [m.train_loss for m in result.history]               # bit for bit
    trained, expected = model.state_dict(), by_hand.state_dict()
    assert all(torch.equal(trained[k], expected[k]) for k in expected)


def test_train_step_lowers_the_loss_on_a_fixed_batch():
    model, _, ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
    plan = batch_plan(ds.train.size(0), TINY_TRAIN)
    optimizer = make_optimizer(model, TINY_TRAIN)
    rows = torch.arange(plan.global_batch)
    model.train()
    losses = [train_step(model, optimizer, ds.train, rows, plan, TINY_TRAIN, step).loss for step in range(30)]
    assert losses[0] > 3.0 and losses[-1] < losses[0] / 2
    assert all(math.isfinite(x) for x in losses)


def test_train_step_refuses_a_nan_loss_and_puts_the_last_good_weights_back():
    model, _, ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
    plan = batch_plan(ds.train.size(0), TINY_TRAIN)
    optimizer = make_optimizer(model, TINY_TRAIN)
    rows = torch.arange(plan.global_batch)
    last_good = [p.detach().clone() for p in model.parameters()]
    train_step(model, optimizer, ds.train, rows, plan, TINY_TRAIN, 0, last_good=last_good)
    sane = [p.detach().clone() for p in model.parameters()]   # after step 1: what step 2 reads
    with torch.no_grad():
        model.blocks[0].mlp.fc.weight.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="at step 2: the loss became NaN"):
        train_step(model, optimizer, ds.train, rows, plan, TINY_TRAIN, 1, last_good=last_good)
    # Back to the weights step 1 computed its sane loss with (copied before its update).
    assert all(torch.equal(p, s) for p, s in zip(model.parameters(), last_good))
    assert not all(torch.equal(p, s) for p, s in zip(model.parameters(), sane))


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


def test_prepare_training_uses_a_tokenizer_already_built():
    from cutellm.lab.runs import prepare_run
    from cutellm.tokenizer import build_tokenizer

    built = build_tokenizer("word", TINY_TEXT, TINY_MODEL.vocab_size)
    model, tok, ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN, tokenizer=built)
    fresh_model, fresh_tok, fresh_ds = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
    assert tok is built and tok.to_dict() == fresh_tok.to_dict()
    assert torch.equal(ds.ids, fresh_ds.ids) and model.config == fresh_model.config
    assert prepare_run(TINY_TEXT, "tiny", TINY_MODEL, TINY_TRAIN, tokenizer=built).tokenizer is built

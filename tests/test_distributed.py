"""Scaling out: torchrun + DDP on CPU (gloo), gradient accumulation, precision and compile options.

CI has 2 CPU cores and no GPU: the distributed runs are 2 CPU processes of one thread each, and the CUDA paths are
checked for what they do without a GPU (a clear ConfigError).

Tolerance for "the same weights" (TOL): a 2-process run and a 1-process run on the same global batch compute the same
sums in a different order (two half-batch means averaged by DDP instead of one mean; two accumulated micro-batches
instead of one batch), so their gradients differ by float32 rounding (~1e-7 relative). AdamW moves every weight by
up to about the learning rate per step whatever the gradient's size, so for gradient components near zero these
rounding differences are not scaled down, and they add up step by step. Measured on these tiny models (20-30 steps,
learning rate 3e-3 to 1e-2, four seeds): 3e-7 to 7e-6 absolute; 4e-5 after 300 steps. TOL, 5e-5 absolute + 1e-5
relative, is 7x the worst of those. Real mistakes are 300x larger or more: forgetting to divide the loss by the
number of micro-batches moves the weights by 1.5e-2 after 30 steps (AdamW hides the scale, gradient clipping does
not), dropping one micro-batch's gradient by 0.19. `test_accumulated_gradient_is_the_big_batch_gradient` checks the
gradients themselves, where a wrong scale cannot hide.
"""

from __future__ import annotations

from dataclasses import replace
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import ddp_agreement
from cutellm import (ConfigError, TrainConfig, TrainingDivergedError, load_checkpoint,
                     prepare_training, train)
from cutellm.fast import distributed
from cutellm.__main__ import main
from cutellm import devices
from cutellm.devices import available_devices, resolve_device, resolve_precision
from cutellm.settings import load_settings
from cutellm.training import BatchPlan, batch_plan, forward_backward

from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN

ROOT = Path(__file__).resolve().parent.parent
TOL = {"atol": 5e-5, "rtol": 1e-5}
NO_GPU = not torch.cuda.is_available()

# fp32: the equalities below (DDP and accumulation against one big batch) hold to fp32's rounding; in bf16, which
# `auto` picks on CPUs with bf16 instructions, matmuls of other shapes round differently.
SMALL = ["--vocab-size", "40", "--d-model", "32", "--n-heads", "2", "--n-layers", "1", "--block-size", "8",
         "--dropout", "0", "--steps", "20", "--eval-interval", "10", "--log-every", "5", "--seed", "3",
         "--precision", "fp32"]


def torchrun(args: list[str], cwd: Path = ROOT, nproc: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=nproc ARGS` through this Python (no torchrun script needed on PATH),
    one thread per process. A run that hangs (processes waiting on each other) fails the test after `timeout`, and
    its whole process group is killed so no worker outlives the test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout}s (deadlock?)\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    import random

    rng = random.Random(0)
    words = "the cat dog bird cow sun sky sat ran sang eats on in to a and is hot blue green grass park tree".split()
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(5, 12))) + "."
                              for _ in range(400)))
    return path


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], **TOL, msg=lambda m: f"{name}: {m}")


# -- torchrun ----------------------------------------------------------------------------------------------------
def test_torchrun_two_processes_train_the_weights_of_one_process(corpus, tmp_path):
    out_dir = tmp_path / "ddp"
    env_file = str(tmp_path / "none.env")
    run = torchrun(["-m", "cutellm", "--env-file", env_file, "train", "--corpus", str(corpus),
                    "--out", str(out_dir / "model.pth"), "--batch-size", "4", *SMALL])
    assert run.returncode == 0, run.stderr
    # Both processes joined; only rank 0 logged the training and saved.
    assert "rank 0 of 2 joined" in run.stderr and "rank 1 of 2 joined" in run.stderr
    assert run.stderr.count("training finished") == 1 and run.stdout.count("saved ") == 1
    assert [p.name for p in out_dir.iterdir()] == ["model.pth"]  # one checkpoint, no temporary file left

    model, tokenizer, meta = load_checkpoint(out_dir / "model.pth", with_meta=True)
    assert meta["world_size"] == 2 and meta["global_batch_size"] == 8 and meta["steps"] == 20
    assert meta["device"] == "cpu" and meta["precision"] == "fp32"

    # One process, batch 8 = 4 x 2 processes, same seed, one thread as each DDP process had.
    single = tmp_path / "single.pth"
    assert main(["--env-file", env_file, "train", "--corpus", str(corpus), "--out", str(single),
                 "--batch-size", "8", "--threads", "1", *SMALL]) == 0
    ref_model, ref_tokenizer, ref_meta = load_checkpoint(single, with_meta=True)
    assert tokenizer.to_dict() == ref_tokenizer.to_dict()
    assert ref_meta["world_size"] == 1 and ref_meta["global_batch_size"] == 8
    assert_same_weights(model.state_dict(), ref_model.state_dict())
    # The logged loss is the mean over the global batch in both.
    torch.testing.assert_close([s[1] for s in meta["loss_curve"]], [s[1] for s in ref_meta["loss_curve"]], **TOL)
    assert meta["final_val_loss"] == pytest.approx(ref_meta["final_val_loss"], rel=1e-5)


def test_torchrun_processes_stop_and_diverge_together_and_accumulate(tmp_path):
    run = torchrun([str(ROOT / "tests" / "ddp_agreement.py"), str(tmp_path)])
    assert run.returncode == 0, run.stderr
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and ranks[0]["backend"] == "gloo"

    # Rank 1 alone asked to stop during step 5: both stopped after step 5; only rank 0 called back and evaluated.
    assert [r["stop"]["status"] for r in ranks] == ["stopped", "stopped"]
    assert [r["stop"]["steps"] for r in ranks] == [5, 5]
    assert [r["stop"]["on_step_calls"] for r in ranks] == [5, 0]
    assert ranks[0]["stop"]["final_val_loss"] is not None and ranks[1]["stop"]["final_val_loss"] is None

    # Rank 1 alone got a NaN loss at step 4: both raised there and kept the same finite weights.
    for r in ranks:
        assert r["diverge"]["raised"] and "step 4" in r["diverge"]["message"] and r["diverge"]["finite"]
    assert ranks[0]["diverge"]["checksum"] == ranks[1]["diverge"]["checksum"]

    # 2 processes x 2 micro-batches of 2 == 1 process x batch 8.
    assert ranks[0]["accumulate"]["global_batch_size"] == 8
    config = replace(ddp_agreement.TRAIN, batch_size=8)
    model, _, dataset = prepare_training(ddp_agreement.TEXT, ddp_agreement.MODEL, config)
    result = train(model, dataset, config)
    assert_same_weights(torch.load(tmp_path / "accumulate.pt", weights_only=True), model.state_dict())
    torch.testing.assert_close(ranks[0]["accumulate"]["losses"], [m.train_loss for m in result.history], **TOL)


def test_without_torchrun_nothing_is_distributed(monkeypatch):
    for var in distributed.TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    assert distributed.launch_context() is None
    assert distributed.init_distributed("cpu") == distributed.SINGLE
    assert distributed.context() == distributed.SINGLE and distributed.context().is_main
    assert distributed.any_rank(True, "cpu") and not distributed.any_rank(False, "cpu")
    ctx = distributed.launch_context({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (ctx.rank, ctx.local_rank, ctx.world_size, ctx.enabled, ctx.is_main) == (3, 1, 4, True, False)
    with pytest.raises(ConfigError, match="whole numbers"):
        distributed.launch_context({"RANK": "x", "LOCAL_RANK": "0", "WORLD_SIZE": "2"})
    assert resolve_device("cpu", local_rank=1) == "cpu"  # CPU processes share the CPU


# -- gradient accumulation ---------------------------------------------------------------------------------------
def _trained(config: TrainConfig, **kwargs):
    model, _, dataset = prepare_training(TINY_TEXT, TINY_MODEL, config)
    return model, train(model, dataset, config, **kwargs)


def test_accumulating_two_micro_batches_equals_one_batch_twice_as_big():
    base = replace(TINY_TRAIN, max_steps=30, eval_interval=10, precision="fp32")   # see SMALL
    big_model, big = _trained(replace(base, batch_size=16))
    acc_model, acc = _trained(replace(base, batch_size=8, grad_accum_steps=2))
    assert acc.global_batch_size == big.global_batch_size == 16
    assert_same_weights(acc_model.state_dict(), big_model.state_dict())
    torch.testing.assert_close([m.train_loss for m in acc.history], [m.train_loss for m in big.history], **TOL)
    assert acc.history[-1].total_steps == big.history[-1].total_steps == 30


def test_accumulated_gradient_is_the_big_batch_gradient():
    # Adam hides a wrong gradient scale (it divides by the gradient's size), so compare the gradients themselves.
    model, _, dataset = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
    rows = torch.arange(12)

    def grads(plan: BatchPlan) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        loss = forward_backward(model, dataset.train, rows, plan, "cpu", "fp32")
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    one_step = dict(world_size=1, steps_per_epoch=1, total_steps=1, eval_interval=1)
    loss1, one = grads(BatchPlan(micro_batch=12, accum_steps=1, **one_step))
    loss3, three = grads(BatchPlan(micro_batch=4, accum_steps=3, **one_step))
    assert loss3 == pytest.approx(loss1, rel=1e-6)
    for a, b in zip(three, one):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_accumulation_keeps_the_stop_signal_and_the_nan_guard():
    config = TrainConfig(**{**TINY_TRAIN.to_dict(), "batch_size": 4, "grad_accum_steps": 3, "max_steps": 40})
    stop = threading.Event()
    model, result = _trained(config, on_step=lambda m: stop.set() if m.step == 6 else None, stop_event=stop)
    assert result.status == "stopped" and result.steps == 6
    assert result.history[0].tokens_per_s > 0 and result.global_batch_size == 12

    model, _, dataset = prepare_training(TINY_TEXT, TINY_MODEL, config)
    kept = {}

    def on_step(m):
        kept[m.step] = [p.detach().clone() for p in model.parameters()]
        if m.step == 5:
            with torch.no_grad():
                model.blocks[0].mlp.fc.weight.fill_(float("nan"))

    with pytest.raises(TrainingDivergedError, match="step 6: the loss became NaN"):
        train(model, dataset, config, on_step=on_step)
    for p, saved in zip(model.parameters(), kept[4]):
        assert torch.equal(p, saved)


def test_batch_plan_splits_the_global_batch_and_refuses_too_few_windows():
    plan = batch_plan(100, TrainConfig(batch_size=8, grad_accum_steps=2, epochs=3), world_size=2)
    assert (plan.micro_batch, plan.global_batch, plan.steps_per_epoch, plan.total_steps) == (8, 32, 3, 9)
    assert batch_plan(10, TrainConfig(batch_size=8, grad_accum_steps=2)).micro_batch == 5  # cut down to fit
    with pytest.raises(ConfigError, match="at least 4 training windows"):
        batch_plan(3, TrainConfig(grad_accum_steps=2), world_size=2)


# -- defaults, precision and compile -----------------------------------------------------------------------------
@pytest.mark.parametrize("native_bf16, expected", [(False, "fp32"), (True, "bf16")])
def test_auto_precision_is_bf16_only_on_a_cpu_with_bf16_instructions(monkeypatch, native_bf16, expected):
    config = TrainConfig()
    assert (config.precision, config.compile, config.grad_accum_steps) == ("auto", False, 1)
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native_bf16)
    assert resolve_precision("auto", "cpu") == expected
    short = {**TINY_TRAIN.to_dict(), "max_steps": 20}
    default_model, default = _trained(TrainConfig(**short))
    explicit_model, _ = _trained(TrainConfig(**{**short, "precision": expected, "grad_accum_steps": 1}))
    assert default.precision == expected and default.world_size == 1 and default.global_batch_size == 16
    for a, b in zip(default_model.parameters(), explicit_model.parameters()):   # auto is that path, bit for bit
        assert torch.equal(a, b)


def test_bf16_on_the_cpu_trains_and_a_seed_gives_the_same_model():
    config = TrainConfig(**{**TINY_TRAIN.to_dict(), "max_steps": 40, "precision": "bf16"})
    model, result = _trained(config)
    assert result.precision == "bf16" and result.status == "finished"
    again, _ = _trained(config)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast: the weights stay fp32
    assert result.history[-1].train_loss < result.history[0].train_loss - 1.0
    fp32_model, _ = _trained(TrainConfig(**{**config.to_dict(), "precision": "fp32"}))
    assert not torch.equal(model.tok_emb.weight, fp32_model.tok_emb.weight)  # it really computed in bf16


def test_compile_option_compiles_what_the_loop_runs(monkeypatch):
    compiled = []

    def fake_compile(module, *args, **kwargs):  # a real compile takes ~15 s here; the wiring is what is tested
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    model, result = _trained(TrainConfig(**{**TINY_TRAIN.to_dict(), "max_steps": 3, "compile": True}))
    assert compiled == [model] and result.steps == 3


@pytest.mark.parametrize("kwargs, words", [
    ({"precision": "fp16"}, "precision"),
    ({"compile": "yes"}, "compile"),
    ({"grad_accum_steps": 0}, "grad_accum_steps"),
])
def test_invalid_options_are_refused(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        TrainConfig(**kwargs)


def test_env_file_sets_precision_and_accumulation(tmp_path):
    env = tmp_path / ".env"
    env.write_text("TRAINING_PRECISION=bf16\nTRAINING_GRAD_ACCUM_STEPS=4\n")
    s = load_settings(env, environ={})
    assert (s.train.precision, s.train.grad_accum_steps) == ("bf16", 4)
    env.write_text("TRAINING_PRECISION=half\n")
    with pytest.raises(ConfigError, match="TRAINING_PRECISION"):
        load_settings(env, environ={})


@pytest.mark.skipif(not NO_GPU, reason="checks what happens without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys, corpus):
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        _trained(TrainConfig(**{**TINY_TRAIN.to_dict(), "device": "cuda", "precision": "bf16"}))
    with pytest.raises(ConfigError, match="mps"):
        resolve_precision("bf16", "mps")
    assert main(["train", "--corpus", str(corpus), "--out", str(tmp_path / "m.pth"), "--device", "cuda"]) == 2
    assert main(["bench", "--device", "cuda", "--precision", "bf16", "--corpus", str(corpus)]) == 2
    err = capsys.readouterr().err
    assert err.count("error: device: 'cuda' was asked for but torch sees no CUDA GPU") == 2
    assert not (tmp_path / "m.pth").exists()


def test_available_devices_lists_what_resolves_here():
    devices = available_devices()
    assert devices[:2] == ["auto", "cpu"]
    assert ("cuda" in devices) == torch.cuda.is_available()
    for name in devices:
        resolve_precision("auto", resolve_device(name))  # every listed device really works

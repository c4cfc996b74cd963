"""The background training job the app uses: progress snapshots, stop, one job per process, session end, idle."""

from __future__ import annotations

import gc
import time
from dataclasses import replace

import pytest
import torch

from cutellm.errors import ConfigError, TrainingBusyError
from cutellm.lab.jobs import QUEUE, TrainingJob, threads_per_slot, training_in_progress, training_slots
from cutellm.lab.runs import PreparedRun, prepare_run
from cutellm.lab.samples import SampleSpec
from cutellm.training import evaluate

from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN


def make_job(steps: int = 40, on_step=None, **kwargs) -> TrainingJob:
    run = prepare_run(TINY_TEXT, "tiny", TINY_MODEL, replace(TINY_TRAIN, max_steps=steps, eval_interval=10))
    return TrainingJob(run, on_step=on_step, **kwargs)


def wait_for_steps(job: TrainingJob, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while (job.snapshot().latest is None or job.snapshot().latest.step < n) and time.time() < deadline:
        time.sleep(0.01)


def test_job_trains_in_the_background_and_reports_progress():
    job = make_job(40).start()
    assert job.join(60)
    snap = job.snapshot()
    assert snap.status == "finished" and not snap.running
    assert [m.step for m in snap.history] == list(range(1, 41))
    assert snap.progress == 1.0 and snap.eta_s is None and snap.last_val_loss is not None
    assert job.usable and not training_in_progress()
    meta = job.checkpoint_metadata()
    assert meta["corpus"] == "tiny" and meta["steps"] == 40 and meta["status"] == "finished"
    assert len(meta["loss_curve"]) == 40


def test_stop_ends_at_the_next_step_and_keeps_weights():
    at_step: dict[int, torch.Tensor] = {}
    job = make_job(100_000, on_step=lambda m: at_step.__setitem__(m.step, job.model.tok_emb.weight.detach().clone()))
    initial = job.model.tok_emb.weight.detach().clone()
    job.start()
    wait_for_steps(job, 5)
    job.stop()
    assert job.join(30)
    snap = job.snapshot()
    assert snap.status == "stopped" and job.stop_reason == "stopped by the user"
    assert job.usable and 5 <= job.result.steps < 100_000
    # The model keeps exactly the weights of its last step: trained, and not rolled back or reset.
    kept = job.model.tok_emb.weight.detach()
    assert torch.equal(kept, at_step[job.result.steps]) and not torch.equal(kept, initial)


class Owner:
    pass


def test_runs_beyond_the_slots_wait_in_the_queue(monkeypatch):
    monkeypatch.setattr(QUEUE, "slots", 1)
    first = make_job(100_000).start()
    try:
        wait_for_steps(first, 3)
        assert training_in_progress()
        second, third = make_job(5).start(), make_job(5).start()
        snap = second.snapshot()
        assert snap.queued and not snap.running and snap.place == 1 and third.snapshot().place == 2
        # Its start is estimated from the run ahead: what the first still has to do at its own pace.
        assert snap.starts_in_s == pytest.approx(first.snapshot().eta_s, rel=0.5)
        third.leave()
        assert third.join(1) and third.snapshot().status == "left the queue" and not third.usable
    finally:
        first.stop()
        first.join(30)
    assert second.join(60) and second.snapshot().status == "finished" and second.usable


def test_one_run_per_tab():
    owner = Owner()
    first = make_job(100_000, owner=owner).start()
    try:
        with pytest.raises(TrainingBusyError, match="this tab already has a run"):
            make_job(5, owner=owner).start()
        make_job(5, owner=Owner()).start()   # another tab may queue
    finally:
        first.stop()
        first.join(30)


def test_a_queued_run_whose_tab_closed_is_dropped(monkeypatch):
    monkeypatch.setattr(QUEUE, "slots", 1)
    first = make_job(100_000).start()
    owner = Owner()
    waiting = make_job(5, owner=owner).start()
    assert waiting.snapshot().queued
    del owner
    gc.collect()
    first.stop()
    assert first.join(30) and waiting.join(5)
    assert waiting.snapshot().status == "left the queue"
    assert waiting.stop_reason == "its browser session ended while it waited"


def worker_messages(spec: SampleSpec | None = None, **worker_kwargs) -> tuple[PreparedRun, list[tuple]]:
    """A 35-step tiny run (an evaluation every 10 steps; live samples by `spec`) through the worker function in this
    thread, and every message it sent, in order."""
    import queue
    import threading

    from cutellm.lab.jobs import _train_worker

    run = prepare_run(TINY_TEXT, "tiny", TINY_MODEL, replace(TINY_TRAIN, max_steps=35, eval_interval=10))
    channel = queue.Queue()
    _train_worker((run, spec, None), channel, threading.Event(), threading.Event(), threading.Event(), None,
                  **worker_kwargs)
    return run, list(channel.queue)


def test_a_worker_sends_its_steps_in_batches_and_each_before_its_sample_or_weights():
    """A worker process reports its steps at most every STEP_REPORT_S (each message costs CPU on the training's
    cores); the end goes out at once, and a sample or the weights never arrive before the step they belong to."""
    _, messages = worker_messages(report_every_s=3600.0, send_weights=True, weights_every_s=3600.0)
    assert [message[0] for message in messages] == ["steps", "weights", "steps", "done"]
    assert [m.step for m in messages[0][1]] == list(range(1, 11)) and messages[1][1] == 10   # the first evaluation
    assert [m.step for m in messages[2][1]] == list(range(11, 36))   # the rest, at the end
    assert messages[-1][1] == "finished"

    _, messages = worker_messages(SampleSpec(budget=1e9), report_every_s=3600.0, send_weights=True,
                                  weights_every_s=0.0)
    assert [message[0] for message in messages] == ["steps", "sample", "weights"] * 4 + ["done"]
    for batch, sample, weights in zip(messages[0::3], messages[1::3], messages[2::3]):
        assert batch[1][-1].step == sample[1].step == weights[1]   # an evaluation's: steps 10, 20, 30, 35


@pytest.mark.parametrize("every_s, looks", [(0.0, 35), (3600.0, 0)])
def test_a_worker_looks_for_its_server_at_most_every_so_often(monkeypatch, every_s, looks):
    """Once a step, the look (a signal and a read of /proc) was 0.4% of a tiny run: a worker looks at most every
    SERVER_CHECK_S (test_a_worker_process_ends_when_its_server_is_killed: that it still ends)."""
    import os

    calls = []
    monkeypatch.setattr("cutellm.lab.jobs.SERVER_CHECK_S", every_s)
    monkeypatch.setattr("cutellm.lab.jobs._server_gone", lambda pid: calls.append(pid) or False)
    monkeypatch.setattr("cutellm.lab.jobs.keep_freed_memory", lambda: None)   # a worker process's setting, not ours
    worker_messages(server_pid=os.getpid())
    assert len(calls) >= looks if looks else calls == []
    assert set(calls) <= {os.getpid()}


@pytest.mark.parametrize("every_s, sent", [(0.0, [10, 20, 30, 35]), (3600.0, [10])])
def test_a_worker_sends_its_weights_at_an_evaluation_at_most_every_so_often(every_s, sent):
    """Pickling the weights holds the training up, so a process sends them at its first evaluation, then at one
    `weights_every_s` later at the soonest: what a killed worker leaves behind."""
    from cutellm.lab.jobs import _loads

    run, messages = worker_messages(send_weights=True, weights_every_s=every_s)
    weights = [m for m in messages if m[0] == "weights"]
    assert [m[1] for m in weights] == sent
    assert set(_loads(weights[-1][2])) == set(run.model.state_dict())


def test_a_worker_process_trains_pauses_and_hands_back_its_weights():
    job = make_job(400, worker="process", samples=SampleSpec()).start()
    initial = job.model.tok_emb.weight.detach().clone()
    wait_for_steps(job, 5)
    job.pause()
    held = job.snapshot().latest.step
    time.sleep(0.5)
    assert job.snapshot().paused and job.snapshot().latest.step == held
    job.resume()
    assert job.join(120)
    snap = job.snapshot()
    assert snap.status == "finished" and [m.step for m in snap.history] == list(range(1, 401)) and snap.samples
    assert job.usable and not torch.equal(job.model.tok_emb.weight, initial)
    # The weights came back from the worker: the loss they give is the one it reported.
    assert job.result.final_val_loss == pytest.approx(evaluate(job.model, job.dataset.val, 32), abs=1e-5)


def test_killing_the_worker_keeps_the_last_weights_it_sent_and_the_server_goes_on(monkeypatch):
    import os
    import signal

    from cutellm.lab import jobs

    monkeypatch.setattr(jobs, "WEIGHTS_EVERY_S", 0.0)   # the weights of every evaluation: the last one is kept
    job = make_job(100_000, worker="process").start()
    wait_for_steps(job, 25)
    os.kill(job._process.pid, signal.SIGKILL)
    assert job.join(30)
    snap = job.snapshot()
    assert snap.status == "failed" and "ended unexpectedly (exit code -9)" in snap.error
    kept = job.result.steps
    assert kept >= 20 and kept % 10 == 0 and f"weights from step {kept:,}" in snap.error
    assert job.usable and job.result.history[-1].val_loss is not None
    # This process (the server) and the queue go on: the next run trains.
    assert not training_in_progress()
    after = make_job(5, worker="process").start()
    assert after.join(60) and after.snapshot().status == "finished"


def test_job_stops_when_its_session_goes_away():
    owner = Owner()
    job = make_job(100_000, owner=owner).start()
    wait_for_steps(job, 3)
    del owner
    gc.collect()
    assert job.join(10)
    assert job.snapshot().status == "stopped" and job.stop_reason == "its browser session ended"


def test_job_stops_when_nobody_watches():
    job = make_job(100_000, idle_timeout_s=0.3).start()  # nobody calls snapshot()
    assert job.join(30)
    assert job.result.status == "stopped" and "nobody looked" in job.stop_reason


def test_divergence_is_reported_and_the_model_stays_usable():
    def poison(m):
        if m.step == 3:
            with torch.no_grad():
                model.blocks[0].mlp.fc.weight.fill_(float("nan"))

    job = make_job(50, on_step=poison)
    model = job.model
    job.start()
    assert job.join(60)
    snap = job.snapshot()
    assert snap.status == "diverged" and "loss became NaN" in snap.error
    assert job.usable and all(torch.isfinite(p).all() for p in model.parameters())


EXIT_WHILE_WORKING = """
import time
from dataclasses import replace
from cutellm import ModelConfig, TrainConfig
from cutellm.lab.estimates import StepTimer
from cutellm.lab.jobs import TrainingJob
from cutellm.lab.runs import PreparedRun, prepare_run

text = " ".join(["the cat sat on the mat.", "the dog ran to the park."] * 100)
model = ModelConfig(vocab_size=64, d_model=48, n_heads=4, n_layers=2, block_size=16, dropout=0.0)
job = TrainingJob(prepare_run(text, "tiny", model, TrainConfig(max_steps=100_000, batch_size=16))).start()
timer = StepTimer()
timer.seconds(replace(model, d_model=256, n_layers=4), TrainConfig(batch_size=64), 64)
while job.snapshot().latest is None or not timer.busy():
    time.sleep(0.01)
print("exiting while both threads compute", flush=True)
"""


def test_the_process_exits_cleanly_while_a_job_trains_and_a_step_is_timed():
    # Both threads are daemons: without the exit hooks that stop and join them, the interpreter exits under a thread
    # still inside torch, and the process aborts (status 134).
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", EXIT_WHILE_WORKING], capture_output=True, text=True, timeout=120)
    assert "exiting while both threads compute" in done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr


def test_a_stopped_run_continues_exactly_as_if_it_had_never_stopped():
    whole = make_job(60).start()
    assert whole.join(60)
    stopped = make_job(60, on_step=lambda m: stopped.stop() if m.step == 23 else None).start()
    assert stopped.join(60) and stopped.snapshot().status == "stopped" and stopped.can_continue
    kept = {k: v.clone() for k, v in stopped.model.state_dict().items()}
    job = stopped.continued().start()
    assert job.join(60)
    snap = job.snapshot()
    assert snap.status == "finished" and [m.step for m in snap.history] == list(range(1, 61))
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(job.model.state_dict()[name], value, atol=1e-6, rtol=0)
    # The stopped run's own model was not trained further: it stays usable while the copy trains.
    assert all(torch.equal(stopped.model.state_dict()[k], v) for k, v in kept.items())
    assert job.checkpoint_metadata()["steps"] == 60 and not job.can_continue
    with pytest.raises(Exception, match="cannot be continued"):
        job.continued()


SERVER_KILLED = """
import os, signal, time
from cutellm import ModelConfig, TrainConfig
from cutellm.lab.jobs import TrainingJob
from cutellm.lab.runs import PreparedRun, prepare_run

text = " ".join(["the cat sat on the mat.", "the dog ran to the park."] * 100)
model = ModelConfig(vocab_size=64, d_model=32, n_heads=4, n_layers=1, block_size=16, dropout=0.0)
job = TrainingJob(prepare_run(text, "tiny", model, TrainConfig(max_steps=1_000_000, batch_size=8)),
                  worker="process").start()
while job.snapshot().latest is None:
    time.sleep(0.05)
print(job._process.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)   # the server dies without a word: no exit hook runs
"""


def test_a_worker_process_ends_when_its_server_is_killed(tmp_path):
    import os
    import subprocess
    import sys

    # Output to a file: a pipe would stay open as long as the worker (which inherits it) lives. The killed server is
    # not reaped until wait() below: the worker must see a zombie as gone too.
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        server = subprocess.Popen([sys.executable, "-c", SERVER_KILLED], stdout=f, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while not out.read_text().strip() and time.time() < deadline:
            time.sleep(0.1)
    worker = int(out.read_text().split()[0])
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, 9)
        pytest.fail("the worker kept training after its server was killed")
    server.wait(10)


@pytest.mark.parametrize("cores, slots, threads", [(2, 1, 2), (4, 2, 2), (16, 8, 2), (3, 1, 3)])
def test_the_cores_are_shared_among_the_training_slots(monkeypatch, cores, slots, threads):
    """One slot on up to 3 cores, half the cores above; each run gets cores / slots threads, at least one."""
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert training_slots({}) == slots and threads_per_slot(slots) == threads
    assert training_slots({"CUTEGPT_TRAINING_SLOTS": "2"}) == 2 and threads_per_slot(cores + 1) == 1


@pytest.mark.parametrize("raw", ["0", "two", "-1"])
def test_a_bad_slot_count_says_which_variable(raw):
    with pytest.raises(ConfigError, match="CUTEGPT_TRAINING_SLOTS"):
        training_slots({"CUTEGPT_TRAINING_SLOTS": raw})

"""The Train page as a lab, in the core: baselines, overfitting, live samples, pause / resume, model files."""

from __future__ import annotations

import math
import shutil
import threading
import time
from dataclasses import replace

import pytest
import torch

from cutellm import CheckpointError, ConfigError, load_checkpoint, prepare_training, train
from cutellm.__main__ import main
from cutellm.checkpoint import load_train_state, save_checkpoint
from cutellm.views.curve import Baselines, overfitting, perplexity, unigram_loss, uniform_loss
from cutellm.lab.jobs import TrainingJob
from cutellm.lab.model_files import SHIPPED_DIR, delete_model, rename_model
from cutellm.lab.runs import prepare_run
from cutellm.lab.samples import LiveSample, SampleSpec
from cutellm.tokenizer import build_tokenizer
from cutellm.training import StepMetrics

from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN


# -- reading the curve ---------------------------------------------------------------------------------------------
def test_unigram_baseline_is_the_entropy_of_the_token_frequencies():
    tokenizer = build_tokenizer("word", "a a a b", 10)
    ids = tokenizer.encode("a a a b")
    assert len(ids) == 4
    by_hand = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))   # p(a) = 3/4, p(b) = 1/4
    assert unigram_loss(ids, tokenizer.vocab_size) == pytest.approx(by_hand, abs=1e-12)
    assert uniform_loss(tokenizer.vocab_size) == pytest.approx(math.log(tokenizer.vocab_size))
    base = Baselines.of(torch.tensor(ids), tokenizer.vocab_size)
    assert base.times_better(base.unigram) == pytest.approx(1.0)
    assert base.times_better(base.unigram - math.log(2)) == pytest.approx(2.0)  # half the perplexity
    assert perplexity(math.log(7)) == pytest.approx(7)


def _history(val_losses: list[float], train_losses: list[float], every: int = 10) -> list[StepMetrics]:
    history = []
    for i, (v, t) in enumerate(zip(val_losses, train_losses)):
        for s in range(every):
            step = i * every + s + 1
            history.append(StepMetrics(step, 100, 1, t, v if s == every - 1 else None, 1e-3, 1.0, 0.0))
    return history


def test_overfitting_fires_when_validation_rises_three_times_while_training_falls():
    notice = overfitting(_history([3.0, 2.5, 2.6, 2.7, 2.8], [3.0, 2.4, 2.0, 1.6, 1.2]))
    assert notice is not None and notice.since_step == 20 and notice.best_val_loss == 2.5
    assert notice.last_val_loss == 2.8


@pytest.mark.parametrize("val, train_", [
    ([3.0, 2.5, 2.2, 2.0, 1.9], [3.0, 2.4, 2.0, 1.6, 1.2]),      # both falling: learning
    ([3.0, 2.5, 2.6, 2.5, 2.8], [3.0, 2.4, 2.0, 1.6, 1.2]),      # only two rises in a row
    ([3.0, 2.5, 2.6, 2.7, 2.8], [3.0, 2.4, 2.6, 2.8, 3.0]),      # training rising too: not overfitting
    ([3.0, 3.1, 3.2], [3.0, 2.0, 1.0]),                          # too few evaluations
])
def test_overfitting_stays_quiet_otherwise(val, train_):
    assert overfitting(_history(val, train_)) is None


# -- live samples --------------------------------------------------------------------------------------------------
def test_live_samples_are_taken_at_the_evaluation_steps_and_stop_with_the_run():
    run = prepare_run(TINY_TEXT, "tiny", TINY_MODEL, replace(TINY_TRAIN, max_steps=100_000, eval_interval=10))
    spec = SampleSpec(prompt="the cat sat on the", blank="the ___ sat on the mat", budget=1.0)
    # On a clock that never moves the samples cost nothing, so every evaluation gets one, however slow the host.
    job = TrainingJob(run, samples=spec, clock=lambda: 0.0).start()
    deadline = time.monotonic() + 60
    while len(job.snapshot().samples) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    job.stop()
    assert job.join(30)
    snap = job.snapshot()
    evals = [m.step for m in snap.history if m.val_loss is not None]
    assert [s.step for s in snap.samples] == evals[:len(snap.samples)] and len(snap.samples) >= 3
    assert all(s.step % 10 == 0 for s in snap.samples)
    assert all(s.continuation.startswith("the cat sat on the") for s in snap.samples)
    assert all("___" not in s.filled and s.filled.endswith("sat on the mat") for s in snap.samples)
    count = len(snap.samples)
    time.sleep(0.3)
    assert len(job.snapshot().samples) == count   # nothing after the run ended


class FakeClock:
    """A clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


STEP_S = 1 / 64    # what each training step costs on the fake clock (powers of two: the sums are exact)


@pytest.mark.parametrize("sample_s, sampled_steps", [
    # 1/8 s per sample against a 5% budget: sample n waits until 5% of the training time covers the n before it,
    # n/8 <= 0.05 x (step - 1)/64, i.e. step >= 160 n + 1: the first evaluation, step 162, then only the last.
    (1 / 8, [2, 162, 200]),
    # 1/1024 s per sample: always within budget, so every evaluation gets one.
    (1 / 1024, list(range(2, 201, 2))),
])
def test_samples_keep_within_their_share_of_the_training_time(monkeypatch, sample_s, sampled_steps):
    import cutellm.lab.jobs as jobs

    clock = FakeClock()

    def sample_costing(model, tokenizer, spec, step, words=None, *, task=None, chat=False, clock):
        clock.now += sample_s
        return LiveSample(step, "the cat", "the cat sat", sample_s)

    monkeypatch.setattr(jobs, "take_sample", sample_costing)
    run = prepare_run(TINY_TEXT, "tiny", TINY_MODEL, replace(TINY_TRAIN, max_steps=200, eval_interval=2))
    step_costs = lambda m: setattr(clock, "now", clock.now + STEP_S)   # noqa: E731  (called after any sample)
    job = TrainingJob(run, samples=SampleSpec(budget=0.05), on_step=step_costs, clock=clock).start()
    assert job.join(60)
    snap = job.snapshot()
    evals = [m.step for m in snap.history if m.val_loss is not None]
    assert evals == list(range(2, 201, 2))
    assert [s.step for s in snap.samples] == sampled_steps    # exactly these evaluations got a sample...
    assert snap.samples[-1].step == 200                       # ...never without the last
    spent = sum(s.seconds for s in snap.samples)
    assert spent == len(sampled_steps) * sample_s
    assert snap.elapsed_s == 200 * STEP_S + spent             # the job's training time: steps and samples
    # Each sample but the last step's was taken while the samples before it were within 5% of the training time.
    for n, sample in enumerate(snap.samples[:-1]):
        assert n * sample_s <= 0.05 * (sample.step - 1) * STEP_S
    if sample_s == 1 / 8:
        assert 0 < len(snap.samples) < len(evals)             # some evaluations went without a sample
        # Within budget, up to one sample (the one that crossed it): on the fake clock the training time is
        # exactly 200 steps.
        assert (len(sampled_steps) - 1) * sample_s <= 0.05 * 200 * STEP_S + sample_s


def test_the_sample_budget_decision():
    spec = SampleSpec(budget=0.05)
    assert spec.due(0.0, 0.0, False) and not spec.due(1.0, 10.0, False)
    assert spec.due(1.0, 10.0, True) and spec.due(0.5, 10.5, False)
    assert spec.due(1.0, 21.0, False) and not spec.due(1.0, 20.5, False)   # 1 s of samples needs 20 s of training
    # A toy task's held-out accuracy may take 10%: 1 s of it needs 10 s of training.
    assert spec.due(1.0, 11.0, False, task=True) and not spec.due(1.0, 10.5, False, task=True)


# -- pause and resume ----------------------------------------------------------------------------------------------
DROPOUT_MODEL = replace(TINY_MODEL, dropout=0.1)    # dropout draws random numbers: resuming must restore them too


def _uninterrupted(steps: int) -> dict[str, torch.Tensor]:
    cfg = replace(TINY_TRAIN, max_steps=steps, eval_interval=10)
    model, _, ds = prepare_training(TINY_TEXT, DROPOUT_MODEL, cfg)
    train(model, ds, cfg)
    return model.state_dict()


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k


def test_pause_then_resume_trains_the_same_weights_as_an_uninterrupted_run():
    reference = _uninterrupted(60)
    run = prepare_run(TINY_TEXT, "tiny", DROPOUT_MODEL, replace(TINY_TRAIN, max_steps=60, eval_interval=10))
    held = threading.Event()

    def pause_at_20(m):
        if m.step == 20:
            job.pause()
            held.set()

    job = TrainingJob(run, on_step=pause_at_20).start()
    assert held.wait(60)
    time.sleep(0.5)
    snap = job.snapshot()
    assert snap.paused and snap.running and snap.latest.step == 20   # held: no step while paused
    paused_elapsed = snap.elapsed_s
    time.sleep(0.3)
    assert job.snapshot().elapsed_s == paused_elapsed   # paused time is not training time: the count stands still
    job.resume()
    assert job.join(60)
    assert job.snapshot().status == "finished" and job.result.steps == 60
    _same_weights(job.model.state_dict(), reference)


def test_stop_while_paused_ends_the_run():
    run = prepare_run(TINY_TEXT, "tiny", TINY_MODEL, replace(TINY_TRAIN, max_steps=100_000))
    job = TrainingJob(run).start()
    while not job.snapshot().history:
        time.sleep(0.01)
    job.pause()
    time.sleep(0.3)
    job.stop()
    assert job.join(10) and job.snapshot().status == "stopped" and not job.snapshot().paused


def test_a_stopped_run_resumes_in_the_core_with_the_same_weights(tmp_path):
    reference = _uninterrupted(60)
    cfg = replace(TINY_TRAIN, max_steps=60, eval_interval=10)
    model, tok, ds = prepare_training(TINY_TEXT, DROPOUT_MODEL, cfg)
    stop = threading.Event()
    first = train(model, ds, cfg, on_step=lambda m: stop.set() if m.step == 25 else None, stop_event=stop)
    assert first.status == "stopped" and first.resume_state.step == 25
    path = save_checkpoint(tmp_path / "half.pth", model, tok, {"steps": 25}, first.resume_state)
    # A fresh process's view: weights and state from the file (weights_only), nothing from memory.
    model2, tok2, meta = load_checkpoint(path, with_meta=True)
    assert meta["resumable"] is True
    state = load_train_state(path)
    rest = train(model2.requires_grad_(True), ds, cfg, resume=state)
    assert rest.status == "finished" and rest.steps == 60 and [m.step for m in rest.history] == list(range(1, 61))
    _same_weights(model2.state_dict(), reference)
    with pytest.raises(ConfigError, match="planned for 60 steps"):
        train(model2, ds, replace(cfg, max_steps=80), resume=state)


def test_cli_resume_continues_a_stopped_run_exactly(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    common = ["--env-file", str(tmp_path / "none.env"), "train", "--corpus", str(corpus), "--steps", "60",
              "--d-model", "48", "--n-heads", "4", "--n-layers", "2", "--block-size", "16", "--vocab-size", "64",
              "--lr", "0.01", "--batch-size", "16", "--dropout", "0.1", "--seed", "0", "--eval-interval", "10",
              "--log-every", "1000"]
    assert main([*common, "--out", str(tmp_path / "whole.pth")]) == 0
    assert main([*common, "--out", str(tmp_path / "part.pth"), "--stop-at-step", "25"]) == 0
    assert "--resume" in capsys.readouterr().out
    _, _, meta = load_checkpoint(tmp_path / "part.pth", with_meta=True)
    assert meta["resumable"] is True and meta["steps"] == 25 and meta["status"] == "stopped"
    assert main(["--env-file", str(tmp_path / "none.env"), "train", "--resume", str(tmp_path / "part.pth"),
                 "--corpus", str(corpus), "--log-every", "1000"]) == 0
    whole, _, whole_meta = load_checkpoint(tmp_path / "whole.pth", with_meta=True)
    resumed, _, meta = load_checkpoint(tmp_path / "part.pth", with_meta=True)
    assert meta["steps"] == 60 and meta["status"] == "finished" and meta["resumable"] is False
    assert len(meta["loss_curve"]) == 60
    _same_weights(resumed.state_dict(), whole.state_dict())
    # A finished run has nothing to resume; another corpus is refused.
    assert main(["--env-file", str(tmp_path / "none.env"), "train", "--resume", str(tmp_path / "whole.pth"),
                 "--corpus", str(corpus)]) == 2
    assert "cannot be resumed" in capsys.readouterr().err


def test_resume_refuses_a_different_corpus(tmp_path, capsys):
    corpus, other = tmp_path / "corpus.txt", tmp_path / "other.txt"
    corpus.write_text(TINY_TEXT)
    other.write_text(TINY_TEXT.replace("cat", "fox"))
    assert main(["--env-file", str(tmp_path / "none.env"), "train", "--corpus", str(corpus), "--steps", "30",
                 "--d-model", "32", "--block-size", "16", "--stop-at-step", "5", "--out", str(tmp_path / "p.pth"),
                 "--log-every", "1000"]) == 0
    assert main(["--env-file", str(tmp_path / "none.env"), "train", "--resume", str(tmp_path / "p.pth"),
                 "--corpus", str(other)]) == 2
    assert "different text" in capsys.readouterr().err


# -- model files ---------------------------------------------------------------------------------------------------
def test_rename_and_delete_a_saved_model(tmp_path, tiny):
    model, tokenizer, _, _ = tiny
    path = save_checkpoint(tmp_path / "mine.pth", model, tokenizer, {})
    renamed = rename_model(path, "yours")
    assert renamed == tmp_path / "yours.pth" and renamed.is_file() and not path.exists()
    save_checkpoint(tmp_path / "other.pth", model, tokenizer, {})
    with pytest.raises(CheckpointError, match="already exists"):
        rename_model(renamed, "other")
    for bad in ("../x", "a b", "cute_llm"):
        with pytest.raises(CheckpointError):
            rename_model(renamed, bad)
    delete_model(renamed)
    assert not renamed.exists()
    with pytest.raises(CheckpointError, match="does not exist"):
        delete_model(renamed)


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """The shipped folder as a temporary copy, so a broken guard can only ever damage the copy."""
    import cutellm.lab.model_files as model_files

    folder = tmp_path / "shipped"
    folder.mkdir()
    shutil.copy(SHIPPED_DIR / "cute_llm.pth", folder / "cute_llm.pth")
    monkeypatch.setattr(model_files, "SHIPPED_DIR", folder)
    return folder / "cute_llm.pth"


@pytest.mark.parametrize("action", [lambda p: delete_model(p), lambda p: rename_model(p, "stolen")])
def test_shipped_models_cannot_be_renamed_or_deleted(tmp_path, shipped_copy, action):
    size = shipped_copy.stat().st_size
    with pytest.raises(CheckpointError, match="shipped model"):
        action(shipped_copy)
    assert shipped_copy.stat().st_size == size
    # Nor a copy that carries a shipped model's name in another folder (it would shadow the shipped one).
    copy = tmp_path / "cute_llm.pth"
    shutil.copy(shipped_copy, copy)
    with pytest.raises(CheckpointError, match="shipped model"):
        action(copy)
    assert copy.exists()


def test_the_smoothed_curve_is_thinned_but_its_average_reads_every_point():
    from cutellm.views.curve import SMOOTHING, smoothed_curve

    points = [(s, float(s % 2)) for s in range(1, 1001)]   # 1, 0, 1, 0, ...
    curve = smoothed_curve(points, max_points=100)
    assert len(curve) == 101 and curve[0] == (1, 1.0, 1.0) and curve[-1][0] == 1000
    avg = None
    for _, loss in points:
        avg = loss if avg is None else SMOOTHING * avg + (1 - SMOOTHING) * loss
    assert curve[-1][2] == avg
    assert smoothed_curve([], 10) == []

"""Background training: a worker thread that trains one model while a UI polls its progress.

The thread never touches the UI; the UI calls `snapshot()` (a consistent copy taken under a lock) as often as it
likes. One job runs per process at a time: on a 2-core machine two trainings would each run at half speed, so a
second request gets a clear `TrainingBusyError` instead.

`pause()` holds the worker between two steps with everything in memory (weights, optimizer, schedule, batch order),
so `resume()` continues the very same run. With a `SampleSpec` the job takes a live sample (cutellm.samples) at each
evaluation step, in its own thread, and lists them in the snapshot.

A job ends when its steps are done, when `stop()` is called (it keeps the weights trained so far), when its owner
object is garbage-collected (the app passes an object living in the browser session's state, so closing the tab
stops the job once Streamlit drops the session), when nobody has looked at it for `idle_timeout_s`, or when the
process exits (an exit hook stops it and waits for the step under way).
"""

from __future__ import annotations

import atexit
import copy
import logging
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, replace
from typing import Any, Callable

from ..errors import ConfigError, CuteLLMError, TrainingBusyError, TrainingDivergedError
from ..training import StepMetrics, TrainResult, TrainState, train
from ..views.curve import Baselines
from .runs import PreparedRun
from .samples import LiveSample, SampleSpec, take_sample

log = logging.getLogger(__name__)

RUNNING, FINISHED, STOPPED, DIVERGED, FAILED = "running", "finished", "stopped", "diverged", "failed"
PAUSE_WAIT_S = 5.0   # how long pause() waits for a step under way to finish
_SERVER_LOCK = threading.Lock()


_RUNNING_JOBS: "weakref.WeakSet[TrainingJob]" = weakref.WeakSet()
_JOBS_BY_ID: "weakref.WeakValueDictionary[str, TrainingJob]" = weakref.WeakValueDictionary()


@atexit.register
def _stop_running_jobs(timeout_s: float = 30.0) -> None:
    """At exit, stop every job and wait for its step under way: a daemon thread still inside torch when the
    interpreter exits aborts the process ("terminate called without an active exception", exit status 134)."""
    jobs = list(_RUNNING_JOBS)
    for job in jobs:
        job.stop("the server is shutting down")
    for job in jobs:
        job.join(timeout_s)


def find_job(job_id: str) -> "TrainingJob | None":
    """The job with this `id`, while anything (a session) still holds it."""
    return _JOBS_BY_ID.get(job_id)


def training_in_progress() -> bool:
    """True while any job in this process is training."""
    return _SERVER_LOCK.locked()


@dataclass(frozen=True)
class JobSnapshot:
    status: str
    history: tuple[StepMetrics, ...]
    total_steps: int
    elapsed_s: float                # training time: pauses left out
    error: str | None = None
    paused: bool = False            # running, but held between two steps
    samples: tuple[LiveSample, ...] = ()   # oldest first

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def latest(self) -> StepMetrics | None:
        return self.history[-1] if self.history else None

    @property
    def progress(self) -> float:
        return 0.0 if not self.total_steps or not self.history else self.history[-1].step / self.total_steps

    @property
    def eta_s(self) -> float | None:
        last = self.latest
        if last is None or not self.running or self.paused:
            return None
        return last.elapsed_s / last.step * (self.total_steps - last.step)

    @property
    def last_val_loss(self) -> float | None:
        return next((m.val_loss for m in reversed(self.history) if m.val_loss is not None), None)

    @property
    def accuracy(self) -> list[tuple[int, float]]:
        """(step, held-out accuracy) at each sample of a toy-task run; empty for text."""
        return [(s.step, s.accuracy) for s in self.samples if s.accuracy is not None]

    @property
    def last_accuracy(self) -> float | None:
        return self.accuracy[-1][1] if self.accuracy else None


class TrainingJob:
    """Train a prepared run in a background thread. Its model is only safe to use once the job is done."""

    def __init__(self, run: PreparedRun, *, owner: object | None = None, idle_timeout_s: float = 600.0,
                 on_step: Callable[[StepMetrics], None] | None = None, samples: SampleSpec | None = None,
                 clock: Callable[[], float] = time.monotonic, resume: TrainState | None = None):
        self.run = run
        # A stopped run's state, to continue it from (see `continued`); None trains from the first step.
        self._resume = resume
        self.model, self.tokenizer, self.dataset, self.config = run.model, run.tokenizer, run.dataset, run.config
        self.name = run.name
        # Unguessable: the page fetches its job's progress by this id (ui/train/live_view.py), so it is the only key.
        self.id = secrets.token_urlsafe(16)
        _JOBS_BY_ID[self.id] = self
        # The curve's reference losses, from the training text's tokens: computed once, before the run.
        self.baselines = Baselines.of(run.dataset.ids[:run.dataset.n_train_tokens], run.model.config.vocab_size)
        self.idle_timeout_s = idle_timeout_s
        self.result: TrainResult | None = None
        self._owner = weakref.ref(owner) if owner is not None else None
        self._extra_on_step = on_step
        # Every time the job keeps (training time, pauses, idleness, what samples cost) reads this one clock, so the
        # samples' share of the training time compares like with like, and a test can pass a clock it moves itself.
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._holding = threading.Event()     # set by the worker once it is actually waiting between two steps
        self._paused_s = 0.0                  # time spent paused, finished pauses
        self._paused_since: float | None = None
        self._sample_spec = samples
        self._samples: list[LiveSample] = []
        self._sample_s = 0.0                  # what the samples have cost so far
        self._history: list[StepMetrics] = list(resume.history) if resume else []   # a continued run's whole curve
        self._before_s = resume.elapsed_s if resume else 0.0   # training time before this job (a continued run)
        self._earlier_snapshots: list = []
        self._status = "created"
        self._error: str | None = None
        self._stop_reason: str | None = None
        self._started: float | None = None
        self._finished: float | None = None
        self._last_seen = clock()
        self._thread: threading.Thread | None = None

    # -- control (called from the UI) ---------------------------------------------------------------------------
    def start(self) -> "TrainingJob":
        if not _SERVER_LOCK.acquire(blocking=False):
            raise TrainingBusyError("another training run is in progress on this server (maybe in another browser "
                                    "tab); wait for it to finish or stop it, then try again")
        self._status = RUNNING
        self._started = self._clock()
        self._thread = threading.Thread(target=self._run, name=f"cutellm-train-{self.name}", daemon=True)
        try:
            self._thread.start()
            _RUNNING_JOBS.add(self)
        except BaseException:
            _SERVER_LOCK.release()
            raise
        return self

    @property
    def task(self) -> str | None:
        """The toy task the run learns (cutellm.tasks), or None for text."""
        return self.run.metadata.get("task")

    @property
    def can_continue(self) -> bool:
        """Whether `continued()` can pick this run up: it was stopped before its last step, in one process."""
        return self._status == STOPPED and self.result is not None and self.result.resume_state is not None

    def continued(self, owner: object | None = None) -> "TrainingJob":
        """A new job (not started) that goes on with this stopped run exactly where it stopped, as resume() does
        after a pause: the optimiser's moments, the learning rate's place, the batch order and the random states
        come back (training.TrainState), so the weights end as an uninterrupted run's would. It trains a copy of
        the weights: this run's model stays usable (it may be the active model) while the copy trains."""
        if not self.can_continue:
            raise ConfigError(f"{self.name} cannot be continued: only a run stopped before its last step can "
                              f"(this one is {self._status})")
        job = TrainingJob(replace(self.run, model=copy.deepcopy(self.model)),
                          owner=owner if owner is not None else (self._owner() if self._owner else None),
                          idle_timeout_s=self.idle_timeout_s, on_step=self._extra_on_step, samples=self._sample_spec,
                          clock=self._clock, resume=self.result.resume_state)
        job._samples, job._sample_s = list(self._samples), self._sample_s
        job._earlier_snapshots = list(self.result.snapshots)
        return job

    def stop(self, reason: str = "stopped by the user") -> None:
        self._stop_reason = self._stop_reason or reason
        self._stop.set()

    def pause(self, wait_s: float = PAUSE_WAIT_S) -> None:
        """Hold the run before its next step; `resume()` continues it exactly where it was. Returns once the worker
        holds (a step already under way finishes first), or after `wait_s`: then no step count shown after a pause
        moves on."""
        with self._lock:
            if self._status != RUNNING or self._pause.is_set():
                return
            self._paused_since = self._clock()
            self._holding.clear()
            self._pause.set()
        self._holding.wait(wait_s)

    def resume(self) -> None:
        with self._lock:
            if self._paused_since is not None:
                self._paused_s += self._clock() - self._paused_since
                self._paused_since = None
            self._pause.clear()

    @property
    def paused(self) -> bool:
        return self._pause.is_set() and self.running

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def running(self) -> bool:
        return self._status == RUNNING

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def snapshot(self) -> JobSnapshot:
        """A consistent copy of the progress so far; also tells the job someone is still watching."""
        with self._lock:
            self._last_seen = self._clock()
            total = self.result.total_steps if self.result else self._total_steps()
            return JobSnapshot(status=self._status, history=tuple(self._history), total_steps=total,
                               elapsed_s=self._elapsed_s(), error=self._error,
                               paused=self._pause.is_set() and self._status == RUNNING,
                               samples=tuple(self._samples))

    def _elapsed_s(self) -> float:
        """Training time so far (call with the lock held): since the start, pauses left out. A pause under way
        stops the count where it began, so the time shown while paused does not move."""
        if self._started is None:
            return 0.0
        until = self._finished if self._finished is not None else self._clock()
        if self._paused_since is not None:
            until = self._paused_since
        return self._before_s + until - self._started - self._paused_s

    # -- the worker thread --------------------------------------------------------------------------------------
    def _total_steps(self) -> int:
        try:
            return self.run.total_steps
        except ConfigError:  # no usable windows: train() will say so
            return self.config.max_steps or 0

    def _on_step(self, metrics: StepMetrics) -> None:
        with self._lock:
            self._history.append(metrics)
        self._watch()
        spec = self._sample_spec
        if spec is not None and metrics.val_loss is not None:
            with self._lock:
                elapsed = self._elapsed_s()
            if spec.due(self._sample_s, elapsed, metrics.step == metrics.total_steps, task=self.task is not None):
                sample = take_sample(self.model, self.tokenizer, spec, metrics.step,
                                     words=self.run.metadata.get("words"), task=self.task, clock=self._clock)
                self._sample_s += sample.seconds
                with self._lock:
                    self._samples.append(sample)
        if self._extra_on_step is not None:
            self._extra_on_step(metrics)

    def _watch(self) -> None:
        """Stop a run nobody can see any more (after every step, and while paused)."""
        if self._pause.is_set():
            self._holding.set()
        with self._lock:
            idle = self._clock() - self._last_seen
        if self._owner is not None and self._owner() is None:
            self.stop("its browser session ended")
        elif idle > self.idle_timeout_s:
            self.stop(f"nobody looked at it for {self.idle_timeout_s / 60:.0f} minutes")

    def _run(self) -> None:
        status, error = FAILED, None
        try:
            self.result = train(self.model, self.dataset, self.config, on_step=self._on_step, stop_event=self._stop,
                                pause_event=self._pause, while_paused=self._watch, resume=self._resume)
            if self._earlier_snapshots:   # the timeline runs through both parts of a continued run
                last = self._earlier_snapshots[-1].step
                self.result.snapshots = self._earlier_snapshots + [s for s in self.result.snapshots if s.step > last]
            status = STOPPED if self.result.status == "stopped" else FINISHED
        except TrainingDivergedError as err:
            self.result, status, error = err.result, DIVERGED, str(err)
        except CuteLLMError as err:
            error = str(err)
        except Exception as err:  # a bug: keep the server alive, log it, tell the user
            log.exception("training job %s failed", self.name)
            error = f"training failed unexpectedly: {type(err).__name__}: {err}"
        finally:
            self.model.eval()
            with self._lock:
                self._status, self._error, self._finished = status, error, self._clock()
                if self._paused_since is not None:   # stopped while paused
                    self._paused_s += self._finished - self._paused_since
                    self._paused_since = None
                self._pause.clear()
            self._holding.set()   # a pause() waiting for this run need not wait any longer
            _SERVER_LOCK.release()
            log.info("training job %s ended: %s%s", self.name, status, f" ({error})" if error else "")

    @property
    def usable(self) -> bool:
        """Whether the job's model holds trained weights worth using (finished, stopped, or diverged and restored)."""
        return self._status in (FINISHED, STOPPED, DIVERGED) and bool(self._history)

    def checkpoint_metadata(self) -> dict[str, Any]:
        """Metadata for save_checkpoint: what was trained on, how, and the results."""
        return self.run.checkpoint_metadata(self.result, self._status)

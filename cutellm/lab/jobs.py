"""Background training: a worker trains one model while a UI polls its progress, in a queue of training slots.

The worker is a **process** in the app (`worker="process"`): a run that fails, diverges, runs out of memory or is
killed never takes the server down, it sets its own CPU thread count, and its memory goes back to the system when it
ends. Library callers and tests may use a **thread** (`worker="thread"`, the default), which trains the caller's own
model object in place. Both run the same function (`_train_worker`) and report through the same messages: the steps,
each live sample, the weights at an evaluation every WEIGHTS_EVERY_S at most (what a killed process leaves
behind), and the end with the final weights and results; `_relay`, a thread of the server, reads them into the job
that the UI polls (`snapshot()`).
A process sends its steps in batches, at most every STEP_REPORT_S (and at once at a pause or the end, and before a
sample or the weights, so that nothing arrives before its step): a tiny model trains a thousand steps a second, and
every message costs the worker's sending thread and the server's relay CPU that the training's cores pay for; the
page shows progress every 2 s anyway.

Runs wait in one server-wide queue (`QUEUE`): `CUTEGPT_TRAINING_SLOTS` of them train at once (by default 1 on a
machine of up to 3 cores, half the cores on a bigger one: two runs on two cores would each run at half speed). A job
started when every slot is busy is *queued*: it knows its place and an estimated start from the runs ahead, it can
`leave()` the queue, and it is dropped when its owner (the browser tab) is gone. One owner has one job at a time.

`pause()` holds the worker between two steps with everything in memory (weights, optimizer, schedule, batch order),
so `resume()` continues the very same run. With a `SampleSpec` the job takes a live sample (cutellm.samples) at each
evaluation step, in the worker, and lists them in the snapshot.

A job ends when its steps are done, when `stop()` is called (it keeps the weights trained so far), when its owner
object is garbage-collected (the app passes an object living in the browser session's state, so closing the tab
stops the job once Streamlit drops the session), when nobody has looked at it for `idle_timeout_s`, or when the
server exits (an exit hook stops it and waits for the step under way).
"""

from __future__ import annotations

import atexit
import copy
import logging
import multiprocessing
import os
import pickle
import queue
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from ..errors import ConfigError, CuteLLMError, TrainingBusyError, TrainingDivergedError
from ..fast.memory import keep_freed_memory
from ..training import StepMetrics, TrainResult, TrainState, train
from ..views.curve import Baselines
from .runs import PreparedRun
from .samples import LiveSample, SampleSpec, take_sample

log = logging.getLogger(__name__)

QUEUED, RUNNING, FINISHED, STOPPED, DIVERGED, FAILED, LEFT = (
    "queued", "running", "finished", "stopped", "diverged", "failed", "left the queue")
PAUSE_WAIT_S = 5.0   # how long pause() waits for a step under way to finish
WORKERS = ("thread", "process")
RELAY_POLL_S = 0.25  # how often the relay looks at the worker when it has nothing to say (stop, idle, crash)
# A worker process sends its steps at most this often (a thread: every step). Every 0.1 s, the messages cost its
# sending thread and the server's relay 4 ms of CPU a second, out of the training's cores (bench/README.md, "Speed,
# round sixteen"); the page shows them every 2 s.
STEP_REPORT_S = 0.5
# A worker process looks whether its server is still there at most this often: once a step, that look (a signal and
# a read of /proc) cost 0.4% of a tiny model's two-thread run (bench/README.md, "Speed, round sixteen").
SERVER_CHECK_S = 1.0
# A worker process sends its weights at an evaluation at most this often: pickling them held the training for 4-13 ms
# each time, 40 times in a 25-s run of the benchmark's model; a killed worker loses at most this much more training.
WEIGHTS_EVERY_S = 5.0


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
    """True while any job of this server is training."""
    return QUEUE.running_count() > 0


def training_slots(environ: dict | None = None) -> int:
    """How many runs train at once: CUTEGPT_TRAINING_SLOTS, else 1 on up to 3 cores and half the cores above (each
    run then has at least two cores to itself)."""
    environ = os.environ if environ is None else environ
    raw = environ.get("CUTEGPT_TRAINING_SLOTS", "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ConfigError(f"CUTEGPT_TRAINING_SLOTS: must be a whole number >= 1, got {raw!r}")
        return int(raw)
    cores = os.cpu_count() or 1
    return 1 if cores <= 3 else cores // 2


def threads_per_slot(slots: int, cores: int | None = None) -> int:
    """CPU threads of each training run: the cores shared evenly among the training slots, at least one."""
    return max(1, (cores or os.cpu_count() or 1) // slots)


class TrainingQueue:
    """The server's training slots and the jobs waiting for one, first come first served."""

    def __init__(self, slots: int):
        self.slots = slots
        self._lock = threading.RLock()
        self._running: list[TrainingJob] = []
        self._waiting: list[TrainingJob] = []
        # Seconds per step of the runs this server trained, for the estimated start of a queued run.
        self._seconds_per_step: list[float] = []

    def submit(self, job: "TrainingJob") -> None:
        """Start `job` now if a slot is free, else queue it. One job per owner: TrainingBusyError for a second."""
        with self._lock:
            owner = job.owner
            if owner is not None and any(j.owner is owner for j in self._running + self._waiting):
                raise TrainingBusyError("this tab already has a run training or queued; stop it or leave the queue "
                                        "first")
            self._drop_orphans()
            if len(self._running) < self.slots:
                self._launch(job)
            else:
                self._waiting.append(job)
                job._status = QUEUED

    def leave(self, job: "TrainingJob") -> bool:
        with self._lock:
            if job not in self._waiting:
                return False
            self._waiting.remove(job)
            return True

    def done(self, job: "TrainingJob", seconds_per_step: float | None) -> None:
        """A running job ended: free its slot and start the next queued job whose tab is still open."""
        with self._lock:
            if job in self._running:
                self._running.remove(job)
            if seconds_per_step:
                self._seconds_per_step = (self._seconds_per_step + [seconds_per_step])[-20:]
            self._drop_orphans()
            while self._waiting and len(self._running) < self.slots:
                nxt = self._waiting.pop(0)
                try:
                    self._launch(nxt)
                except Exception as err:   # this one cannot start (say, no process left): the next one may
                    log.exception("training job %s could not start", nxt.name)
                    nxt._end_in_queue(f"could not start: {err}")

    def _launch(self, job: "TrainingJob") -> None:
        """Give `job` a slot and start it (lock held); a job that fails to start gives its slot back."""
        self._running.append(job)
        try:
            job._launch()
        except BaseException:
            self._running.remove(job)
            raise

    def _drop_orphans(self) -> None:
        """Queued jobs whose tab closed are dropped (call with the lock held)."""
        for job in [j for j in self._waiting if j.orphaned]:
            self._waiting.remove(job)
            job._end_in_queue("its browser session ended while it waited")

    def running_count(self) -> int:
        with self._lock:
            return len(self._running)

    def jobs(self) -> list["TrainingJob"]:
        """Every job training or waiting, running ones first."""
        with self._lock:
            return [*self._running, *self._waiting]

    def place(self, job: "TrainingJob") -> int | None:
        """1 for the next job to start, or None when `job` is not waiting."""
        with self._lock:
            return self._waiting.index(job) + 1 if job in self._waiting else None

    def estimated_start_s(self, job: "TrainingJob") -> float | None:
        """Seconds until `job` should start: the runs ahead of it, measured (the running ones by their own pace,
        the queued ones at the pace of the runs this server has trained); None when nothing is measured yet."""
        with self._lock:
            if job not in self._waiting:
                return None
            pace = sorted(self._seconds_per_step)[len(self._seconds_per_step) // 2] if self._seconds_per_step else None
            finishes = []
            for running in self._running:
                eta = running.snapshot(touch=False).eta_s
                if eta is None:
                    return None
                finishes.append(eta)
            for ahead in self._waiting[:self._waiting.index(job)]:
                if pace is None:
                    return None
                finishes.append(ahead._total_steps() * pace)
            # Slots free up in order: the earliest end takes the next waiting run.
            ends = sorted(finishes[:len(self._running)])
            for extra in finishes[len(self._running):]:
                ends[0] += extra
                ends.sort()
            return ends[0] if len(ends) >= self.slots else 0.0


QUEUE = TrainingQueue(training_slots())


# -- the worker: the same function in a thread or in a process ------------------------------------------------------
def _dumps(obj: Any) -> bytes:
    """Tensors and dataclasses as bytes (plain pickle: a tensor's data goes inline): what crosses between the server
    and a worker process, never shared memory, so a worker that ends at once loses nothing it sent."""
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _loads(data: bytes) -> Any:
    """Only ever bytes that the server and its own worker made (never a file or an upload: those go through
    cutellm.checkpoint's safe load)."""
    return pickle.loads(data)


def _server_gone(pid: int | None) -> bool:
    """Whether the server process `pid` has ended (a worker must not outlive it: nobody would read its messages)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)   # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:   # Linux: a killed server that its parent has not reaped yet is a zombie, gone all the same
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _train_worker(payload: bytes | tuple, channel, stop, pause, holding, threads: int | None,
                  clock: Callable[[], float] | None = None, training_time: Callable[[], float] | None = None,
                  on_step_extra: Callable[[StepMetrics], None] | None = None, send_weights: bool = False,
                  weights_every_s: float = 0.0, server_pid: int | None = None, report_every_s: float = 0.0) -> None:
    """Train the run in `payload` ((run, sample spec, resume state), as bytes in a process) and report on
    `channel`: ("steps", [metrics, ...]) every `report_every_s` (0: each step alone; at once at a pause and the end,
    and before a sample or weights), ("sample", LiveSample), ("weights", step, bytes) at an evaluation when
    `send_weights` (the first one, then one at least `weights_every_s` after the last sent), ("holding",) once per
    pause when it waits, then ("done", status, error, bytes of (state_dict, result without its model) or None).

    `clock` and `training_time` time the samples against their budget: a thread gets the job's (a test's fake clock
    reaches it); a process measures its own (the steps' time as train() reports it, samples included). A process
    given its `server_pid` ends itself within SERVER_CHECK_S when the server is gone (killed, say), rather than train
    for nobody."""
    run, spec, resume = _loads(payload) if isinstance(payload, bytes) else payload
    if server_pid is not None:   # a process of its own (not a thread of the server's): keep its freed memory
        keep_freed_memory()
    if threads:
        torch.set_num_threads(threads)
    clock = clock or time.perf_counter
    spent = 0.0
    pending: list[StepMetrics] = []   # steps not sent yet
    sent_at = time.monotonic()
    weights_at: float | None = None   # when the weights were last sent

    def send_steps() -> None:
        nonlocal sent_at
        if pending:
            channel.put(("steps", pending.copy()))
            pending.clear()
        sent_at = time.monotonic()

    task, chat, words = run.metadata.get("task"), run.chat, run.metadata.get("words")

    checked_at = time.monotonic()   # when the worker last looked for its server

    def server_check() -> None:
        nonlocal checked_at
        now = time.monotonic()
        if server_pid is None or now - checked_at < SERVER_CHECK_S:
            return
        checked_at = now
        if _server_gone(server_pid):
            os._exit(0)   # nothing to save: nobody is left to read it

    def hold() -> None:
        """Say once per pause that the worker waits: after every step it sent, so the relay has them all."""
        if not holding.is_set():
            send_steps()
            holding.set()
            channel.put(("holding",))

    def while_paused() -> None:
        server_check()
        hold()

    def on_step(m: StepMetrics) -> None:
        nonlocal spent, weights_at
        server_check()
        pending.append(m)
        if (m.step == m.total_steps or pause.is_set() or stop.is_set()
                or time.monotonic() - sent_at >= report_every_s):
            send_steps()
        if pause.is_set():
            hold()
        if spec is not None and m.val_loss is not None:
            elapsed = training_time() if training_time is not None else m.elapsed_s
            if spec.due(spent, elapsed, m.step == m.total_steps, task=task is not None):
                sample = take_sample(run.model, run.tokenizer, spec, m.step, words=words, task=task, chat=chat,
                                     clock=clock)
                spent += sample.seconds
                send_steps()   # the sample's step first
                channel.put(("sample", sample))
        if send_weights and m.val_loss is not None and (weights_at is None
                                                         or time.monotonic() - weights_at >= weights_every_s):
            send_steps()
            channel.put(("weights", m.step, _dumps(run.model.state_dict())))
            weights_at = time.monotonic()
        if on_step_extra is not None:
            on_step_extra(m)

    status, error, result = FAILED, None, None
    try:
        result = train(run.model, run.dataset, run.config, on_step=on_step, stop_event=stop, pause_event=pause,
                       while_paused=while_paused, resume=resume)
        status = STOPPED if result.status == "stopped" else FINISHED
    except TrainingDivergedError as err:
        result, status, error = err.result, DIVERGED, str(err)
    except CuteLLMError as err:
        error = str(err)
    except Exception as err:  # a bug: the server stays up, the log has it, the learner is told
        log.exception("training job %s failed", run.name)
        error = f"training failed unexpectedly: {type(err).__name__}: {err}"
    finally:
        run.model.eval()
    send_steps()
    done = None if result is None else _dumps((run.model.state_dict(), replace(result, model=None)))
    channel.put(("done", status, error, done))


def _process_context() -> multiprocessing.context.BaseContext:
    """forkserver: each worker is forked from a small server process that imported torch once, so a run starts in
    a fraction of a second, and never from the Streamlit server itself, whose threads a fork would copy mid-step."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["cutellm.lab.jobs"])
    return ctx


@dataclass(frozen=True)
class JobSnapshot:
    status: str
    history: tuple[StepMetrics, ...]
    total_steps: int
    elapsed_s: float                # training time: pauses left out
    error: str | None = None
    paused: bool = False            # running, but held between two steps
    samples: tuple[LiveSample, ...] = ()   # oldest first
    place: int | None = None        # queued: 1 for the next run to start
    starts_in_s: float | None = None   # queued: the estimated wait, from the runs ahead (None: not measured yet)

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def queued(self) -> bool:
        return self.status == QUEUED

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
    """Train a prepared run in the background (a worker thread or process, see the module's docstring). Its model
    holds the trained weights once the job is done."""

    def __init__(self, run: PreparedRun, *, owner: object | None = None, idle_timeout_s: float = 600.0,
                 on_step: Callable[[StepMetrics], None] | None = None, samples: SampleSpec | None = None,
                 clock: Callable[[], float] = time.monotonic, resume: TrainState | None = None,
                 worker: str = "thread", threads: int | None = None):
        if worker not in WORKERS:
            raise ConfigError(f"worker: must be one of {', '.join(WORKERS)}, got {worker!r}")
        if worker == "process" and on_step is not None:
            raise ConfigError("on_step runs beside the training loop: use worker='thread' for it")
        self.run = run
        self.worker = worker
        self.threads = threads
        # A stopped run's state, to continue it from (see `continued`); None trains from the first step.
        self._resume = resume
        self.model, self.tokenizer, self.dataset, self.config = run.model, run.tokenizer, run.dataset, run.config
        self.name = run.name
        # Unguessable: the page fetches its job's progress by this id (ui/train/live_view.py), so it is the only key.
        self.id = secrets.token_urlsafe(16)
        _JOBS_BY_ID[self.id] = self
        # The curve's reference losses, from the targets the loss counts: computed once, before the run.
        self.baselines = Baselines.of(run.dataset.learned_ids(), run.model.config.vocab_size)
        self.idle_timeout_s = idle_timeout_s
        self.result: TrainResult | None = None
        self._owner = weakref.ref(owner) if owner is not None else None
        self._extra_on_step = on_step
        # Every time the job keeps (training time, pauses, idleness, what samples cost) reads this one clock, so the
        # samples' share of the training time compares like with like, and a test can pass a clock it moves itself.
        self._clock = clock
        self._lock = threading.Lock()
        ctx = _process_context() if worker == "process" else None
        events = ctx.Event if ctx is not None else threading.Event
        self._stop, self._pause, self._holding = events(), events(), events()   # holding: the worker waits
        self._held = threading.Event()   # the relay has read every step the worker sent before it held
        self._paused_s = 0.0                  # time spent paused, finished pauses
        self._paused_since: float | None = None
        self._sample_spec = samples
        self._samples: list[LiveSample] = []
        self._history: list[StepMetrics] = list(resume.history) if resume else []   # a continued run's whole curve
        self._before_s = resume.elapsed_s if resume else 0.0   # training time before this job (a continued run)
        self._earlier_snapshots: list = []
        self._kept: tuple[int, bytes] | None = None   # the last weights a process sent (step, bytes)
        self._status = "created"
        self._error: str | None = None
        self._stop_reason: str | None = None
        self._started: float | None = None
        self._finished: float | None = None
        self._last_seen = clock()
        self._relay_thread: threading.Thread | None = None
        self._worker_thread: threading.Thread | None = None
        self._process = None
        self._channel: Any = None
        self._ended = threading.Event()

    # -- control (called from the UI) ---------------------------------------------------------------------------
    def start(self) -> "TrainingJob":
        """Train now if a slot is free, else wait in the server's queue (`snapshot().place`)."""
        QUEUE.submit(self)
        return self

    def _launch(self) -> None:
        """Start the worker and its relay (the queue calls this, with its lock held, when a slot is free)."""
        self._status = RUNNING
        self._started = self._clock()
        self._last_seen = self._clock()
        payload = (self.run, self._sample_spec, self._resume)
        if self.worker == "process":
            ctx = _process_context()
            self._channel = ctx.Queue()
            self._process = ctx.Process(
                target=_train_worker, name=f"cutellm-train-{self.name}", daemon=True,
                args=(_dumps(payload), self._channel, self._stop, self._pause, self._holding,
                      self.threads or threads_per_slot(QUEUE.slots)),
                kwargs={"send_weights": True, "weights_every_s": WEIGHTS_EVERY_S, "server_pid": os.getpid(),
                        "report_every_s": STEP_REPORT_S})
            self._process.start()
            # Only the worker writes: the server lets go of its copy of the pipe's write end, so a worker killed in
            # the middle of a message leaves a pipe that ends (EOFError) rather than one that waits forever.
            self._channel._writer.close()
        else:
            self._channel = queue.Queue()
            self._worker_thread = threading.Thread(
                target=_train_worker, name=f"cutellm-train-{self.name}", daemon=True,
                args=(payload, self._channel, self._stop, self._pause, self._holding, self.threads),
                kwargs={"clock": self._clock, "training_time": self._training_time,
                        "on_step_extra": self._extra_on_step})
            self._worker_thread.start()
        self._relay_thread = threading.Thread(target=self._relay, name=f"cutellm-relay-{self.name}", daemon=True)
        self._relay_thread.start()
        _RUNNING_JOBS.add(self)

    @property
    def owner(self) -> object | None:
        return self._owner() if self._owner is not None else None

    @property
    def orphaned(self) -> bool:
        """Its owner (a browser tab) is gone."""
        return self._owner is not None and self._owner() is None

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
                          owner=owner if owner is not None else self.owner,
                          idle_timeout_s=self.idle_timeout_s, on_step=self._extra_on_step, samples=self._sample_spec,
                          clock=self._clock, resume=self.result.resume_state, worker=self.worker,
                          threads=self.threads)
        job._samples = list(self._samples)
        job._earlier_snapshots = list(self.result.snapshots)
        return job

    def stop(self, reason: str = "stopped by the user") -> None:
        self._stop_reason = self._stop_reason or reason
        if self._status == QUEUED:
            self.leave(reason)
        self._stop.set()

    def leave(self, reason: str = "left the queue") -> None:
        """Take a queued job out of the queue (nothing was trained)."""
        if QUEUE.leave(self):
            self._end_in_queue(reason)

    def _end_in_queue(self, reason: str) -> None:
        with self._lock:
            self._status, self._stop_reason = LEFT, self._stop_reason or reason
        self._ended.set()

    def pause(self, wait_s: float = PAUSE_WAIT_S) -> None:
        """Hold the run before its next step; `resume()` continues it exactly where it was. Returns once the worker
        holds (a step already under way finishes first), or after `wait_s`: then no step count shown after a pause
        moves on."""
        with self._lock:
            if self._status != RUNNING or self._pause.is_set():
                return
            self._paused_since = self._clock()
            self._holding.clear()
            self._held.clear()
            self._pause.set()
        self._held.wait(wait_s)

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
        """Wait for the job to end (trained, stopped, failed or out of the queue); True when it has."""
        return self._ended.wait(timeout) if self._status != "created" else True

    @property
    def running(self) -> bool:
        return self._status == RUNNING

    @property
    def queued(self) -> bool:
        return self._status == QUEUED

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def snapshot(self, touch: bool = True) -> JobSnapshot:
        """A consistent copy of the progress so far; also tells the job someone is still watching (`touch`)."""
        place = QUEUE.place(self) if self._status == QUEUED else None
        starts_in = QUEUE.estimated_start_s(self) if place is not None else None
        with self._lock:
            if touch:
                self._last_seen = self._clock()
            total = self.result.total_steps if self.result else self._total_steps()
            return JobSnapshot(status=self._status, history=tuple(self._history), total_steps=total,
                               elapsed_s=self._elapsed_s(), error=self._error,
                               paused=self._pause.is_set() and self._status == RUNNING,
                               samples=tuple(self._samples), place=place, starts_in_s=starts_in)

    def _elapsed_s(self) -> float:
        """Training time so far (call with the lock held): since the start, pauses left out. A pause under way
        stops the count where it began, so the time shown while paused does not move."""
        if self._started is None:
            return 0.0
        until = self._finished if self._finished is not None else self._clock()
        if self._paused_since is not None:
            until = self._paused_since
        return self._before_s + until - self._started - self._paused_s

    def _training_time(self) -> float:
        with self._lock:
            return self._elapsed_s()

    def _total_steps(self) -> int:
        try:
            return self.run.total_steps
        except ConfigError:  # no usable windows: train() will say so
            return self.config.max_steps or 0

    # -- the relay: the worker's messages into the job (a thread of the server) -------------------------------
    def _relay(self) -> None:
        done = None
        while done is None:
            try:
                message = self._channel.get(timeout=RELAY_POLL_S)
            except (EOFError, OSError):   # the worker died in the middle of a message
                self._process.join(5)
                done = self._crashed()
                break
            except queue.Empty:
                self._watch()
                if self._process is not None and not self._process.is_alive():
                    # Gone without a word: anything it sent before dying is read first.
                    try:
                        message = self._channel.get(timeout=1.0)
                    except (queue.Empty, EOFError, OSError):
                        done = self._crashed()
                        break
                else:
                    continue
            kind = message[0]
            if kind == "steps":
                with self._lock:
                    self._history.extend(message[1])
                self._watch()
            elif kind == "sample":
                with self._lock:
                    self._samples.append(message[1])
            elif kind == "weights":
                self._kept = (message[1], message[2])
            elif kind == "holding":
                self._held.set()
            elif kind == "done":
                done = self._finish(*message[1:])
        if self._process is not None:
            self._process.join(10)
        self._end(*done)

    def _finish(self, status: str, error: str | None, payload: bytes | None) -> tuple[str, str | None]:
        if payload is not None:
            state_dict, result = _loads(payload)
            self.model.load_state_dict(state_dict)
            self.result = replace(result, model=self.model)
            if self._earlier_snapshots:   # the timeline runs through both parts of a continued run
                last = self._earlier_snapshots[-1].step
                self.result.snapshots = self._earlier_snapshots + [s for s in self.result.snapshots if s.step > last]
        return status, error

    def _crashed(self) -> tuple[str, str | None]:
        """The worker process ended without reporting (killed, out of memory): keep the last weights it sent."""
        code = self._process.exitcode
        why = f"the training process ended unexpectedly (exit code {code})"
        if self._kept is None:
            return FAILED, f"{why}, before its first evaluation: nothing trained was kept"
        step, weights = self._kept
        self.model.load_state_dict(_loads(weights))
        with self._lock:
            history = [m for m in self._history if m.step <= step]
        self.result = TrainResult(model=self.model, history=history, total_steps=self._total_steps(),
                                  status="failed", final_val_loss=history[-1].val_loss if history else None)
        return FAILED, f"{why}; the model keeps its weights from step {step:,}"

    def _end(self, status: str, error: str | None) -> None:
        self.model.eval()
        with self._lock:
            self._status, self._error, self._finished = status, error, self._clock()
            if self._paused_since is not None:   # stopped while paused
                self._paused_s += self._finished - self._paused_since
                self._paused_since = None
            self._pause.clear()
            steps = len([m for m in self._history if m.step > (self._resume.step if self._resume else 0)])
            pace = self._elapsed_s() / steps if steps else None
        self._held.set()   # a pause() waiting for this run need not wait any longer
        QUEUE.done(self, pace)
        self._ended.set()
        log.info("training job %s ended: %s%s", self.name, status, f" ({error})" if error else "")

    def _watch(self) -> None:
        """Stop a run nobody can see any more (at every step the relay reads, and while the worker is quiet)."""
        with self._lock:
            idle = self._clock() - self._last_seen
        if self.orphaned:
            self.stop("its browser session ended")
        elif idle > self.idle_timeout_s:
            self.stop(f"nobody looked at it for {self.idle_timeout_s / 60:.0f} minutes")

    @property
    def usable(self) -> bool:
        """Whether the job's model holds trained weights worth using: finished, stopped, diverged and restored, or
        the last weights a crashed process sent."""
        if self._status == FAILED:
            return self._kept is not None and self.result is not None
        return self._status in (FINISHED, STOPPED, DIVERGED) and bool(self._history)

    def checkpoint_metadata(self) -> dict[str, Any]:
        """Metadata for save_checkpoint: what was trained on, how, and the results."""
        return self.run.checkpoint_metadata(self.result, self._status)

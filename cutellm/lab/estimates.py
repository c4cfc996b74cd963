"""What a run will be before it starts: its size, its work per step, its memory, and how long it will take here.

`run_preview` counts the parameters of the model these settings build (split into embeddings, attention and MLP, from
`inspection.architecture_summary`, so the numbers are the model's own), the tokens one optimiser step reads, the steps,
and the memory training needs. The time is never guessed from a constant: `StepTimer` trains a few real steps of the
same shape on this machine, in a background thread, and remembers the result per shape.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import dataclass, replace

import torch

from ..config import ModelConfig, TrainConfig
from ..devices import resolve_device, resolve_precision
from ..model import CuteLLM
from ..training import BatchPlan, batch_plan, make_optimizer, train_step
from ..views.inspection import Architecture, architecture_summary

log = logging.getLogger(__name__)

# Steps timed per measurement, after one untimed warm-up step. The fastest one counts: the preview measures while
# the page itself is loading (the screenshot run's median of 3 read 133 ms for a 6 ms step), and a busy moment only
# ever makes a step slower.
TIMED_STEPS = 6
# An evaluation runs forward passes only: about a third of the work of a training step of the same size.
FORWARD_SHARE = 1 / 3


@dataclass(frozen=True)
class RunPreview:
    architecture: Architecture
    embedding_params: int      # token + position embeddings (the LM head reuses the token embedding)
    attention_params: int      # every block's attention, its LayerNorm included
    mlp_params: int            # every block's MLP, its LayerNorm included
    other_params: int          # the final LayerNorm and anything else
    plan: BatchPlan
    tokens_per_step: int
    memory_bytes: int          # about: weights, gradients, AdamW's two moments, activations of one micro-batch

    @property
    def total_params(self) -> int:
        return self.architecture.total_params

    @property
    def steps(self) -> int:
        return self.plan.total_steps

    def seconds(self, step_s: float, eval_batches: int | None) -> float:
        """The run's time from a measured step time: the steps, plus the evaluations, each `eval_batches` batches of
        the same size read forward only."""
        evaluations = self.steps // self.plan.eval_interval + 2      # the periodic ones, the last step's, the final
        return step_s * (self.steps + evaluations * (eval_batches or 20) * FORWARD_SHARE)


def run_preview(model_config: ModelConfig, train_config: TrainConfig, n_train_windows: int) -> RunPreview:
    """The numbers of a run of these settings on a corpus with `n_train_windows` training windows."""
    with torch.device("meta"):        # shapes only: no memory, no time, even for a large model
        model = CuteLLM(model_config)
    arch = architecture_summary(model)
    by_kind = {kind: sum(c.params for c in arch.components if c.kind == kind)
               for kind in ("embedding", "attention", "mlp")}
    plan = batch_plan(n_train_windows, train_config)
    return RunPreview(architecture=arch, embedding_params=by_kind["embedding"],
                      attention_params=by_kind["attention"], mlp_params=by_kind["mlp"],
                      other_params=arch.total_params - sum(by_kind.values()), plan=plan,
                      tokens_per_step=plan.global_batch * model_config.block_size,
                      memory_bytes=training_memory(model_config, plan.micro_batch, arch.total_params))


def training_memory(cfg: ModelConfig, micro_batch: int, params: int) -> int:
    """About how many bytes training takes: 16 per parameter (fp32 weights, gradients and AdamW's two moments), the
    activations kept for the backward pass (per layer and token about 34 x d_model values plus 5 x heads x context
    for the attention maps, as in Korthikanti et al. 2022, counted in fp32) and the logits with their softmax and
    gradient (3 x vocabulary per token)."""
    tokens = micro_batch * cfg.block_size
    per_layer = tokens * (34 * cfg.d_model + 5 * cfg.n_heads * cfg.block_size) * 2
    logits = tokens * cfg.vocab_size * 3 * 4
    return 16 * params + cfg.n_layers * per_layer + logits


def measure_step_seconds(model_config: ModelConfig, train_config: TrainConfig, micro_batch: int,
                         steps: int = TIMED_STEPS) -> float:
    """Seconds per optimiser step of this shape on this machine: the fastest of `steps` real training steps
    (`training.train_step`, the very step `training.train` takes) on random tokens, after one warm-up step."""
    device = resolve_device(train_config.device)
    precision = resolve_precision(train_config.precision, device)
    gen = torch.Generator().manual_seed(0)
    model = CuteLLM(model_config).to(device).train()
    optimizer = make_optimizer(model, train_config)
    plan = BatchPlan(micro_batch=micro_batch, accum_steps=train_config.grad_accum_steps, world_size=1,
                     steps_per_epoch=1, total_steps=steps + 1, eval_interval=steps + 1)
    windows = torch.randint(0, model_config.vocab_size, (plan.global_batch, model_config.block_size + 1),
                            generator=gen)
    rows = torch.arange(plan.global_batch)
    last_good = [p.detach().clone() for p in model.parameters() if p.requires_grad]   # as train() keeps them
    times = []
    for i in range(steps + 1):
        began = time.perf_counter()
        train_step(model, optimizer, windows, rows, plan, train_config, i, device=device, precision=precision,
                   last_good=last_good)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - began)
    return min(times)


def timing_key(model_config: ModelConfig, train_config: TrainConfig, micro_batch: int) -> tuple:
    """What a step's time depends on: the shape, the micro-batch, the accumulation, where and how it computes."""
    shape = replace(model_config, dropout=0.0 if model_config.dropout == 0 else 0.1)   # dropout on/off, not its rate
    return (shape, micro_batch, train_config.grad_accum_steps, train_config.device, train_config.precision,
            train_config.num_threads)


class StepTimer:
    """Measures step times in one background thread, one shape at a time, and remembers them per shape.

    `seconds(...)` answers at once: the measured time, or None while it is measured (the latest shape asked for is
    measured next; shapes asked for in between are skipped, as the learner has moved on).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[tuple, float] = {}
        self._failed: dict[tuple, str] = {}
        self._wanted: tuple | None = None
        self._args: tuple | None = None
        self._thread: threading.Thread | None = None
        atexit.register(self.close)

    def close(self, timeout_s: float = 30.0) -> None:
        """Measure nothing more and wait for the measurement under way: a daemon thread still inside torch when the
        interpreter exits aborts the process ("terminate called without an active exception", exit status 134)."""
        with self._lock:
            self._wanted = self._args = None
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def seconds(self, model_config: ModelConfig, train_config: TrainConfig, micro_batch: int) -> float | None:
        key = timing_key(model_config, train_config, micro_batch)
        with self._lock:
            if key in self._known or key in self._failed:
                return self._known.get(key)
            self._wanted, self._args = key, (model_config, train_config, micro_batch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="cutellm-step-timer", daemon=True)
                self._thread.start()
        return None

    def error(self, model_config: ModelConfig, train_config: TrainConfig, micro_batch: int) -> str | None:
        """Why this shape could not be measured (say, it does not fit in memory), if it could not."""
        with self._lock:
            return self._failed.get(timing_key(model_config, train_config, micro_batch))

    def busy(self) -> bool:
        with self._lock:
            return self._wanted is not None

    def _work(self) -> None:
        while True:
            with self._lock:
                key, args = self._wanted, self._args
                if key is None:
                    return
            try:
                value: float | str = measure_step_seconds(*args)
            except (RuntimeError, ValueError) as err:   # out of memory, a device gone: say so instead of a time
                log.warning("could not time a step of %s: %s", args[0], err)
                value = str(err).splitlines()[0] if str(err) else type(err).__name__
            with self._lock:
                if isinstance(value, str):
                    self._failed[key] = value
                else:
                    self._known[key] = value
                if self._wanted == key:
                    self._wanted = None

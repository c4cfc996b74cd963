"""Training: many small optimiser steps, each one making the model a little less wrong about its corpus.

`train_step()` is one step, the idea of training in a dozen lines: set the learning rate (linear warmup, then cosine
decay: `lr_at`), forget the last gradients, run a batch of windows forward to a loss (how badly the model predicted
each next token) and backward to gradients (which way each weight should move), clip them, check the loss is sane,
and let AdamW move the weights. `train()` is everything around those steps: which windows each step reads (a new
random order every epoch), periodic validation, pause and stop, weight snapshots, resuming, and the final losses.

`train()` reports every optimiser step to an `on_step` callback (the app draws its live chart from these), stops at the
next step when `stop_event` is set (keeping the weights trained so far), waits between two steps while `pause_event`
is set, and never applies a non-finite update: a NaN/inf loss restores the weights of the last good step and raises
TrainingDivergedError.

A stopped run can be continued exactly: `TrainResult.resume_state` holds everything beyond the weights (the AdamW
moments, the step reached, and so the learning rate's place in its schedule, the epoch's window order and the random
states), and `train(..., resume=state)` carries on from there; the checkpoint can carry it (cutellm.checkpoint).

One optimiser step reads a *global batch* of windows: batch_size x grad_accum_steps x processes. Each process (one,
or one per GPU/CPU slot under torchrun, see cutellm.distributed) takes every world_size-th window of it, in
micro-batches of batch_size whose gradients accumulate; DistributedDataParallel averages the gradients over the
processes. Every micro-batch has the same size, so this is exactly the gradient of the mean loss over the global
batch, and 2 processes x batch 8 train the same weights as 1 process x batch 16 (up to float rounding).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import statistics
import threading
import time
from dataclasses import astuple, dataclass, field, replace
from typing import Callable, NamedTuple

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from .fast import distributed
from .config import ModelConfig, TrainConfig
from .devices import resolve_device, resolve_precision
from .data import Dataset, bits_per_char, inputs_and_targets, prepare_dataset
from .errors import ConfigError, TrainingDivergedError
from .model import CuteLLM, evaluating
from .tokenizer import Tokenizer, build_tokenizer

log = logging.getLogger(__name__)

# Training stops as diverged when a batch's loss exceeds this many times log(vocab_size), the loss of a uniform guess.
EXPLODED_LOSS_FACTOR = 3.0
# Validation losses per run when TrainConfig.eval_interval is None, at least MIN_EVAL_INTERVAL steps apart.
EVALS_PER_RUN = 40
MIN_EVAL_INTERVAL = 10
# Numbers that the widest tensor of one evaluation forward pass may hold (the logits, the MLP's hidden layer or the
# attention's scores): 4M floats, 16 MB. Within it, evaluate() reads many windows at once (the 160 windows of a
# periodic validation of the default model in one pass instead of five), and every tensor of a pass stays under
# the mmap threshold of cutellm.fast.memory, so the next pass reuses its memory: in passes of 943 windows, the
# benchmark model's final validation made ~1M page faults and took 4.1 s, in passes of 128 none and 3.1 s.
EVAL_TENSOR_BUDGET = 4 * 1024 * 1024


@dataclass(frozen=True)
class StepMetrics:
    step: int                  # optimiser steps done (1-based)
    total_steps: int
    epoch: int                 # 1-based
    train_loss: float          # loss of this step's batch
    val_loss: float | None     # set on evaluation steps only
    lr: float
    tokens_per_s: float        # throughput of this step
    elapsed_s: float           # wall time since training started (evaluations included)
    # Where the wall time went (bench/app_overhead.py compares runs step by step with these): the step itself
    # (forward, backward, optimiser) and, on evaluation steps, the evaluation after it. Defaults for the history of a
    # resume state saved before they existed.
    step_time_s: float = 0.0
    eval_time_s: float | None = None


@dataclass(frozen=True)
class WeightSnapshot:
    """The model's weights after `step` optimiser steps (0 = as initialised), on the CPU."""

    step: int
    state_dict: dict[str, torch.Tensor]

    def to_model(self, config: ModelConfig) -> CuteLLM:
        """A model (eval mode) holding these weights."""
        model = CuteLLM(config)
        model.load_state_dict(self.state_dict)
        return model.eval()


@dataclass
class TrainState:
    """What a stopped single-process run needs, beside its weights, to continue as if it had never stopped."""

    step: int                       # optimiser steps done: the learning rate's place in its schedule
    total_steps: int
    optimizer: dict                 # AdamW's state_dict (moments, step counts)
    order: torch.Tensor             # this epoch's window order
    data_rng: torch.Tensor          # the batch-order generator's state after drawing `order`
    torch_rng: torch.Tensor         # the global CPU generator (dropout masks on the CPU; a GPU's are not kept)
    elapsed_s: float                # training time so far
    history: list[StepMetrics] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Tensors, numbers and lists only: what `torch.load(weights_only=True)` accepts."""
        return {"step": self.step, "total_steps": self.total_steps, "optimizer": self.optimizer,
                "order": self.order, "data_rng": self.data_rng, "torch_rng": self.torch_rng,
                "elapsed_s": self.elapsed_s, "history": [list(astuple(m)) for m in self.history]}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainState":
        return cls(step=int(data["step"]), total_steps=int(data["total_steps"]), optimizer=data["optimizer"],
                   order=data["order"], data_rng=data["data_rng"], torch_rng=data["torch_rng"],
                   elapsed_s=float(data["elapsed_s"]), history=[StepMetrics(*row) for row in data["history"]])


@dataclass
class TrainResult:
    model: CuteLLM
    history: list[StepMetrics] = field(default_factory=list)
    snapshots: list[WeightSnapshot] = field(default_factory=list)
    total_steps: int = 0
    status: str = "finished"   # "finished", "stopped" (stop signal) or "diverged"
    final_train_loss: float | None = None    # None on the processes of a distributed run other than the main one
    final_val_loss: float | None = None
    val_tokens_per_char: float | None = None  # of the validation text: turns its loss into bits per character
    train_tokens_per_char: float | None = None
    wall_time_s: float = 0.0
    # Where this call's wall time went (a resumed run: since it resumed): in the steps (forward, backward, optimiser)
    # and in the evaluations (periodic and final); the rest went to `on_step` (a job's live samples, its messages).
    steps_time_s: float = 0.0
    eval_time_s: float = 0.0
    final_eval_time_s: float = 0.0  # of eval_time_s, the final figures' (the periodic ones: history's eval_time_s)
    global_batch_size: int = 0  # windows per optimiser step, over all micro-batches and processes
    world_size: int = 1         # processes that trained together (torchrun)
    device: str = ""            # where the main process trained, e.g. "cpu", "cuda:0"
    precision: str = "fp32"     # what the forward pass computed in ("fp32" or "bf16" autocast)
    resume_state: TrainState | None = None  # set when a single-process run stopped early: train(resume=...) goes on

    @property
    def steps(self) -> int:
        return self.history[-1].step if self.history else 0

    @property
    def median_tokens_per_s(self) -> float:
        rates = [m.tokens_per_s for m in self.history[10:]] or [m.tokens_per_s for m in self.history]
        return statistics.median(rates) if rates else 0.0

    @property
    def final_val_bits_per_char(self) -> float | None:
        return bits_per_char(self.final_val_loss, self.val_tokens_per_char)

    def summary(self) -> dict:
        """Plain numbers for a checkpoint's metadata."""
        return {"steps": self.steps, "total_steps": self.total_steps, "status": self.status,
                "final_train_loss": self.final_train_loss, "final_val_loss": self.final_val_loss,
                "final_val_bits_per_char": self.final_val_bits_per_char,
                "val_tokens_per_char": self.val_tokens_per_char, "train_tokens_per_char": self.train_tokens_per_char,
                "wall_time_s": round(self.wall_time_s, 3), "steps_time_s": round(self.steps_time_s, 3),
                "eval_time_s": round(self.eval_time_s, 3), "final_eval_time_s": round(self.final_eval_time_s, 3),
                "tokens_per_s": round(self.median_tokens_per_s, 1),
                "global_batch_size": self.global_batch_size, "world_size": self.world_size, "device": self.device,
                "precision": self.precision, "loss_curve": [[m.step, m.train_loss, m.val_loss] for m in self.history],
                "step_times_s": [round(m.step_time_s, 5) for m in self.history],
                "eval_times_s": [[m.step, round(m.eval_time_s, 5)] for m in self.history if m.eval_time_s is not None]}


def lr_at(step: int, total_steps: int, config: TrainConfig) -> float:
    """Learning rate for 0-based `step`: linear warmup, then cosine decay to learning_rate * min_lr_ratio.

    Warmup is capped at a tenth of the run so short runs still reach the full rate.
    """
    lr, min_lr = config.learning_rate, config.learning_rate * config.min_lr_ratio
    warmup = min(config.warmup_steps, total_steps // 10)
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= total_steps:
        return min_lr
    ratio = (step - warmup) / max(1, total_steps - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def make_optimizer(model: CuteLLM, config: TrainConfig) -> torch.optim.AdamW:
    # Decay matrices only; LayerNorm gains (1-D) are left alone, as in GPT-2/nanoGPT.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=config.learning_rate, betas=config.betas, fused=True)
    except (RuntimeError, TypeError):  # fused kernels missing for this device/dtype
        return torch.optim.AdamW(groups, lr=config.learning_rate, betas=config.betas)


def evaluate(model: CuteLLM, windows: torch.Tensor, batch_size: int, max_batches: int | None = None, *,
             chunk_size: int | None = None, loss_mask: torch.Tensor | None = None) -> float | None:
    """Mean loss over (a fixed, evenly spaced subset of `max_batches` x `batch_size` of) the windows; None when
    there are none. Reads `chunk_size` windows at a time (default: as many as keep the logits within
    EVAL_TENSOR_BUDGET, at least `batch_size`: fewer, larger forward passes). With a `loss_mask` (instruction
    tuning), the mean over the targets it counts."""
    n = windows.size(0)
    if n == 0:
        return None
    if max_batches is not None and max_batches * batch_size < n:
        rows = torch.linspace(0, n - 1, max_batches * batch_size).round().long()
    else:
        rows = torch.arange(n)
    total, count = 0.0, 0
    device = model.device
    if chunk_size is None:
        chunk_size = eval_chunk_size(model.config, windows.size(1) - 1, batch_size)   # a window: inputs + 1 target
    with evaluating(model):
        for chunk in rows.split(chunk_size):
            mask = None if loss_mask is None else loss_mask[chunk].to(device)
            _, loss = model(*inputs_and_targets(windows[chunk].to(device), mask))
            weight = chunk.numel() if mask is None else int(mask.sum())   # targets counted (every window: all)
            total += loss.item() * weight
            count += weight
    return total / count if count else None


def eval_chunk_size(config: ModelConfig, block: int, batch_size: int) -> int:
    """Windows per evaluation pass: as many as keep its widest tensor within EVAL_TENSOR_BUDGET, at least
    `batch_size`. Per window, the widest is the logits (block x vocabulary), the MLP's hidden layer (block x its
    width; SwiGLU's gate and value: twice that) or the attention's scores (heads x block x block)."""
    hidden = 2 * config.mlp_width if config.mlp == "swiglu" else config.mlp_width
    widest = block * max(config.vocab_size, hidden, config.n_heads * block)
    return max(batch_size, EVAL_TENSOR_BUDGET // widest)


@dataclass(frozen=True)
class BatchPlan:
    """How the windows of one optimiser step are cut: micro_batch x accum_steps on each of world_size processes."""

    micro_batch: int        # windows per forward/backward pass
    accum_steps: int        # micro-batches per optimiser step on each process
    world_size: int         # processes
    steps_per_epoch: int
    total_steps: int

    eval_interval: int      # steps between validation losses

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.accum_steps * self.world_size


def batch_plan(n_train: int, config: TrainConfig, world_size: int = 1) -> BatchPlan:
    """The batch sizes and step counts of a run on `n_train` training windows; `batch_size` is cut down when one
    global batch would need more windows than there are."""
    if n_train == 0:
        raise ConfigError("the corpus has no training window; add text or lower the block size")
    shares = config.grad_accum_steps * world_size
    micro = min(config.batch_size, n_train // shares)
    if micro < 1:
        raise ConfigError(f"one optimiser step needs at least {shares} training windows ({config.grad_accum_steps} "
                          f"accumulation step(s) x {world_size} process(es)) but the corpus has {n_train}; add text, "
                          "or use fewer accumulation steps or processes")
    steps_per_epoch = max(1, n_train // (micro * shares))
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    return BatchPlan(micro_batch=micro, accum_steps=config.grad_accum_steps, world_size=world_size,
                     steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                     eval_interval=config.eval_interval or max(MIN_EVAL_INTERVAL, total_steps // EVALS_PER_RUN))


class StepResult(NamedTuple):
    loss: float         # mean loss of the step's global batch, before the update
    grad_norm: float    # the gradients' total norm before clipping
    lr: float           # the learning rate the update used


def train_step(model: CuteLLM, optimizer: torch.optim.Optimizer, windows: torch.Tensor, rows: torch.Tensor,
               plan: BatchPlan, config: TrainConfig, step: int, *, net: nn.Module | None = None,
               device: str | None = None, precision: str = "fp32",
               last_good: list[torch.Tensor] | None = None, loss_mask: torch.Tensor | None = None) -> StepResult:
    """One optimiser step, the heart of training: read the windows `rows` of `windows`, measure how wrong the model
    is, and nudge every weight downhill. 0-based `step` places the learning rate in its schedule (`lr_at`).
    `loss_mask` (one row per window) says which targets count, for instruction tuning; None: all of them.

    1. set the learning rate;  2. forget the last step's gradients;  3. forward pass, loss and backward pass over
    the micro-batches (`forward_backward`: the gradients add up);  4. clip the gradients to `config.grad_clip`;
    5. check the loss and the gradient norm are sane;  6. AdamW updates the weights.

    Step 5 never lets a NaN/inf or exploded loss (see EXPLODED_LOSS_FACTOR) reach the weights: it raises
    TrainingDivergedError, after putting back `last_good` (the weights of the last sane step, which this step
    refreshes before its update) when given. `net` is what computes the forward pass when it is not `model` itself
    (compiled, or wrapped in DistributedDataParallel: see training_module).
    """
    net = model if net is None else net
    device = str(model.device) if device is None else device
    params = [p for p in model.parameters() if p.requires_grad]
    lr = lr_at(step, plan.total_steps, config)
    for group in optimizer.param_groups:
        group["lr"] = lr

    optimizer.zero_grad(set_to_none=True)
    loss = forward_backward(net, windows, rows, plan, device, precision, loss_mask)     # 0-d
    norm = clip_gradients(params, config.grad_clip)                         # 0-d
    # One host sync per step, for the loss and the gradient norm together (on a GPU each sync is a stall).
    loss_value, norm_value = torch.stack([loss, norm]).tolist()
    _check_sane(loss_value, norm_value, step, lr, model.config.vocab_size, params, last_good)
    if last_good is not None:
        # These weights gave a sane loss: the ones to come back to if the next step's loss is not (one call for
        # every tensor rather than a Python loop of copies).
        torch._foreach_copy_(last_good, params)
    optimizer.step()
    return StepResult(loss_value, norm_value, lr)


def _check_sane(loss: float, norm: float, step: int, lr: float, vocab: int, params: list[torch.Tensor],
                last_good: list[torch.Tensor] | None) -> None:
    """Raise TrainingDivergedError (with the weights of the last sane step back in place) for a NaN/inf loss, a
    loss far above a uniform guess's (log vocab: the weights blew up even if no NaN appeared yet), or NaN/inf
    gradients."""
    if not math.isfinite(loss) or loss > EXPLODED_LOSS_FACTOR * math.log(vocab):
        if last_good is not None:
            _restore(params, last_good)
        what = ("became NaN" if math.isnan(loss) else "became inf" if not math.isfinite(loss)
                else f"exploded to {loss:.1f} (a random guess scores {math.log(vocab):.1f})")
        raise TrainingDivergedError(
            f"training stopped at step {step + 1}: the loss {what}; the learning rate ({lr:.3g}) is probably "
            f"too high. The model keeps the weights of step {step}, the last with a sane loss.")
    if not math.isfinite(norm):
        raise TrainingDivergedError(
            f"training stopped at step {step + 1}: the gradients became NaN/inf (learning rate {lr:.3g} is "
            "probably too high). The model keeps the weights it had before this step.")


def train(model: CuteLLM, dataset: Dataset, config: TrainConfig, *,
          on_step: Callable[[StepMetrics], None] | None = None,
          stop_event: threading.Event | None = None, pause_event: threading.Event | None = None,
          while_paused: Callable[[], None] | None = None, resume: TrainState | None = None) -> TrainResult:
    """Train `model` in place on `dataset`, one `train_step` after another; returns the history and final losses.

    While `pause_event` is set the loop waits before its next step (nothing is lost: this is the same run, later),
    calling `while_paused` about 4 times a second so a watchdog can still stop it; paused time is not training time.
    `resume` continues a run stopped earlier with the same model, data and config (see TrainState).

    Raises TrainingDivergedError (with `.result`) when the loss becomes NaN/inf or explodes (see
    EXPLODED_LOSS_FACTOR); the model then holds the weights of the last step whose loss was sane.

    Under torchrun (a process group started by cutellm.distributed.init_distributed) every process makes this same
    call with the same model, data and config. Only the main process evaluates, keeps snapshots and calls `on_step`;
    a stop asked for in any process, or a diverged loss, ends the run in all of them at the same step.
    """
    ctx = distributed.context()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device, ctx.local_rank if ctx.enabled else None)
    precision = resolve_precision(config.precision, device)
    model.to(device)
    torch.manual_seed(config.seed + ctx.rank)  # dropout: each process its own masks; a single process uses `seed`
    gen = torch.Generator().manual_seed(config.seed)  # batch order: the same permutation in every process

    windows = dataset.train
    n_train = windows.size(0)
    plan = batch_plan(n_train, config, ctx.world_size)
    if plan.micro_batch < config.batch_size:
        log.warning("batch_size %d is larger than the %d training windows allow (%d micro-batch(es) per step); "
                    "using %d", config.batch_size, n_train, plan.accum_steps * plan.world_size, plan.micro_batch)
    total_steps = plan.total_steps
    net = training_module(model, config, device)
    optimizer = make_optimizer(model, config)
    result = TrainResult(model=model, total_steps=total_steps, global_batch_size=plan.global_batch,
                         world_size=ctx.world_size, device=device, precision=precision,
                         val_tokens_per_char=dataset.tokens_per_char("val"),
                         train_tokens_per_char=dataset.tokens_per_char("train"))
    # The weights of the last step whose loss was sane: what a diverged step puts back (see train_step).
    last_good = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    tokens_per_step = plan.global_batch * dataset.block_size

    snapshot_at = snapshot_steps(total_steps, config, model) if ctx.is_main else set()

    order = torch.empty(0, dtype=torch.long)
    first_step, done_before_s = 0, 0.0
    if resume is not None:
        first_step, order, done_before_s = _resume(resume, total_steps, optimizer, gen, result, ctx.enabled)
    if 0 in snapshot_at and first_step == 0:
        result.snapshots.append(_snapshot(model, 0))

    model.train()
    start = time.perf_counter()
    paused_s = 0.0
    val_loss = None
    for step in range(first_step, total_steps):
        if pause_event is not None and pause_event.is_set():
            paused_s += _hold(pause_event, stop_event, while_paused)
        if distributed.any_rank(stop_event is not None and stop_event.is_set(), device):
            result.status = "stopped"
            break
        t0 = time.perf_counter()
        pos = (step % plan.steps_per_epoch) * plan.global_batch
        if pos == 0:
            order = torch.randperm(n_train, generator=gen)
        # This process's share of the global batch: every world_size-th window, from its rank on.
        rows = order[pos:pos + plan.global_batch][ctx.rank::ctx.world_size]
        try:
            loss_value, _, lr = train_step(model, optimizer, windows, rows, plan, config, step, net=net, device=device,
                                           precision=precision, last_good=last_good, loss_mask=dataset.train_mask)
        except TrainingDivergedError as err:
            result.status = "diverged"
            result.wall_time_s = time.perf_counter() - start
            err.result = result
            raise
        step_time = time.perf_counter() - t0
        result.steps_time_s += step_time

        done = step + 1
        val_loss = eval_time = None
        if ctx.is_main and (done % plan.eval_interval == 0 or done == total_steps):
            eval_began = time.perf_counter()
            val_loss = evaluate(model, dataset.val, plan.global_batch, config.eval_batches,
                                loss_mask=dataset.val_mask)
            eval_time = time.perf_counter() - eval_began
            result.eval_time_s += eval_time
        metrics = StepMetrics(step=done, total_steps=total_steps, epoch=step // plan.steps_per_epoch + 1,
                              train_loss=loss_value, val_loss=val_loss, lr=lr,
                              tokens_per_s=tokens_per_step / step_time,
                              elapsed_s=done_before_s + time.perf_counter() - start - paused_s,
                              step_time_s=step_time, eval_time_s=eval_time)
        result.history.append(metrics)
        if done in snapshot_at:
            result.snapshots.append(_snapshot(model, done))
        if on_step is not None and ctx.is_main:
            on_step(metrics)

    if result.status == "stopped" and not ctx.enabled:
        result.resume_state = TrainState(
            step=result.steps, total_steps=total_steps, optimizer=copy.deepcopy(optimizer.state_dict()),
            order=order.clone(), data_rng=gen.get_state(), torch_rng=torch.get_rng_state(),
            elapsed_s=done_before_s + time.perf_counter() - start - paused_s, history=list(result.history))
    if snapshot_at and result.steps and (not result.snapshots or result.snapshots[-1].step != result.steps):
        result.snapshots.append(_snapshot(model, result.steps))  # stopped early: the timeline ends where it did
    if ctx.is_main:
        # Final figures: the whole validation split (it is small and this is the number we report), and as many
        # training windows as a periodic evaluation reads. In fp32, as the saved model will be used.
        eval_began = time.perf_counter()
        result.final_train_loss = evaluate(model, dataset.train, plan.global_batch, config.eval_batches,
                                           loss_mask=dataset.train_mask)
        result.final_val_loss = evaluate(model, dataset.val, plan.global_batch, loss_mask=dataset.val_mask)
        result.final_eval_time_s = time.perf_counter() - eval_began
        result.eval_time_s += result.final_eval_time_s
    result.wall_time_s = done_before_s + time.perf_counter() - start - paused_s
    model.eval()
    if ctx.is_main:
        log.info("training %s after %d/%d steps: train loss %s, val loss %s, %.1fs (steps %.1fs, evaluations %.1fs)",
                 result.status, result.steps, total_steps, _fmt(result.final_train_loss),
                 _fmt(result.final_val_loss), result.wall_time_s, result.steps_time_s, result.eval_time_s)
    return result


def _resume(state: TrainState, total_steps: int, optimizer: torch.optim.Optimizer, gen: torch.Generator,
            result: TrainResult, distributed_run: bool) -> tuple[int, torch.Tensor, float]:
    """Put the optimiser, the batch order and the random states back where `state` left them; returns (first step,
    window order, training seconds already done)."""
    if distributed_run:
        raise ConfigError("resuming a stopped run works for single-process runs only (not under torchrun)")
    if state.total_steps != total_steps:
        raise ConfigError(f"this run was planned for {state.total_steps:,} steps but these settings and this corpus "
                          f"give {total_steps:,}: resume with the same corpus and settings")
    if not 0 < state.step < total_steps:
        raise ConfigError(f"nothing to resume: the run stopped after {state.step:,} of {total_steps:,} steps")
    optimizer.load_state_dict(state.optimizer)
    gen.set_state(state.data_rng)
    torch.set_rng_state(state.torch_rng)
    result.history = list(state.history)
    return state.step, state.order.clone(), state.elapsed_s


def _hold(pause_event: threading.Event, stop_event: threading.Event | None,
          while_paused: Callable[[], None] | None) -> float:
    """Wait while paused (or until a stop); returns the seconds waited."""
    began = time.perf_counter()
    while pause_event.is_set() and not (stop_event is not None and stop_event.is_set()):
        if while_paused is not None:
            while_paused()
        time.sleep(0.25)
    return time.perf_counter() - began


def training_module(model: CuteLLM, config: TrainConfig, device: str) -> nn.Module:
    """What the loop calls for the forward pass: the model, compiled when `config.compile`, wrapped in
    DistributedDataParallel under torchrun (nanoGPT's order: compile, then DDP). Evaluation, snapshots and
    checkpoints use `model` itself, whose parameters these wrappers share."""
    net: nn.Module = torch.compile(model) if config.compile else model
    if distributed.context().enabled:
        index = torch.device(device).index
        net = DistributedDataParallel(net, device_ids=None if index is None else [index])
    return net


def forward_backward(net: nn.Module, windows: torch.Tensor, rows: torch.Tensor, plan: BatchPlan, device: str,
                     precision: str, loss_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Forward and backward passes over this process's `rows`, in micro-batches; returns the mean loss of the whole
    global batch (the same number in every process), as a 0-d tensor.

    Each micro-batch's mean loss is divided by the number of micro-batches, so the accumulated gradient is that of
    the mean over this process's windows; DDP then averages over processes. Gradients are only all-reduced after the
    last micro-batch (no_sync before): the sum is the same, the earlier exchanges would be wasted.
    """
    total = torch.zeros((), device=device)
    micro_batches = rows.split(plan.micro_batch)
    for i, micro in enumerate(micro_batches):
        batch = windows[micro].to(device, non_blocking=True)
        mask = None if loss_mask is None else loss_mask[micro].to(device, non_blocking=True)
        with _grad_sync(net, i == len(micro_batches) - 1):
            with autocast(device, precision):
                _, loss = net(*inputs_and_targets(batch, mask))
            (loss / plan.accum_steps).backward()
        total += loss.detach()
    return distributed.mean_over_ranks(total / plan.accum_steps)


def clip_gradients(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients down to a total norm of at most `max_norm` (0: leave them); returns their norm before
    (a tensor: reading it is a host sync, left to the caller). The gradients are the same in every process (DDP
    averaged them), so every process agrees on the norm."""
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads else torch.zeros(())


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for `precision == "bf16"` (matmuls in bf16, reductions and the loss in fp32); nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _grad_sync(net: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    if sync or not isinstance(net, DistributedDataParallel):
        return contextlib.nullcontext()
    return net.no_sync()


def snapshot_steps(total_steps: int, config: TrainConfig, model: CuteLLM) -> set[int]:
    """Steps after which to copy the weights: evenly spaced from 0 (untrained) to the last step, as many as
    `config.snapshots` allows within `config.snapshot_max_bytes`."""
    if config.snapshots < 2:
        return set()
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    count = min(config.snapshots, config.snapshot_max_bytes // max(1, size), total_steps + 1)
    if count < 2:
        log.warning("no training snapshots: one copy of this model (%.1f MB) exceeds the %.0f MB budget",
                    size / 1e6, config.snapshot_max_bytes / 1e6)
        return set()
    return {round(i * total_steps / (count - 1)) for i in range(count)}


def _snapshot(model: CuteLLM, step: int) -> WeightSnapshot:
    return WeightSnapshot(step, {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})


def _restore(params: list[torch.Tensor], saved: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def new_model(config: ModelConfig, seed: int) -> CuteLLM:
    """A freshly initialised model; the same seed gives the same weights."""
    torch.manual_seed(seed)
    return CuteLLM(config)


def prepare_training(text: str, model_config: ModelConfig, train_config: TrainConfig, *,
                     tokenizer_kind: str = "word", tokenizer: Tokenizer | None = None
                     ) -> tuple[CuteLLM, Tokenizer, Dataset]:
    """Corpus text -> (fresh model, tokenizer built from the corpus, windows): everything `train()` needs.

    `tokenizer`, when given, is one already built from this text (by `build_tokenizer(tokenizer_kind, text,
    model_config.vocab_size)`, say for the corpus statistics): it is used as it is instead of being built again (BPE
    merges on a big corpus take seconds). Nothing here changes it.
    """
    if tokenizer is None:
        tokenizer = build_tokenizer(tokenizer_kind, text, model_config.vocab_size)
    dataset = prepare_dataset(text, tokenizer, model_config.block_size, stride=train_config.stride,
                              val_fraction=train_config.val_fraction)
    config = replace(model_config, vocab_size=tokenizer.vocab_size)
    return new_model(config, train_config.seed), tokenizer, dataset


def prepare_finetuning(text: str, base: CuteLLM, tokenizer: Tokenizer, train_config: TrainConfig
                       ) -> tuple[CuteLLM, Tokenizer, Dataset]:
    """Continue training `base` on new text: a trainable copy of the model (the base is never changed), its
    tokenizer and shape unchanged (new words outside its vocabulary become <unk>), and the new text's windows."""
    dataset = prepare_dataset(text, tokenizer, base.config.block_size, stride=train_config.stride,
                              val_fraction=train_config.val_fraction)
    model = copy.deepcopy(base).cpu()
    model.requires_grad_(True)
    return model, tokenizer, dataset

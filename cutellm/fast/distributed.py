"""Data-parallel training over several processes or machines, launched by torchrun.

`torchrun --nproc_per_node=N -m cutellm train ...` starts N copies of the CLI and tells each its place through
environment variables: RANK (0..WORLD_SIZE-1 over all machines), LOCAL_RANK (its index on its own machine, which
picks its GPU) and WORLD_SIZE. This module is the one place that reads them and talks to torch.distributed; the
training loop asks `context()` where it stands and uses the small collectives below so every process takes the same
decisions (stop, diverged) at the same step, which is what keeps them from waiting on each other forever.

Without torchrun (or with a single process) nothing here starts a process group, and `context()` describes one
process: the ordinary, single-process training path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Iterator, Mapping

import torch
import torch.distributed as dist

from ..devices import resolve_device
from ..errors import ConfigError

log = logging.getLogger(__name__)

# The variables torchrun sets for every process it starts.
TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank `rank` of `world_size`, number `local_rank` on its machine."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None      # "gloo" (CPU) or "nccl" (CUDA) while a process group is up

    @property
    def enabled(self) -> bool:
        """True when gradients are shared with other processes."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that logs, evaluates, calls back and writes the checkpoint."""
        return self.rank == 0


SINGLE = DistContext()


def launch_context(environ: Mapping[str, str] | None = None) -> DistContext | None:
    """This process's place from torchrun's environment variables; None when torchrun did not start it."""
    env = os.environ if environ is None else environ
    if not all(var in env for var in TORCHRUN_VARS):
        return None
    try:
        rank, local_rank, world = (int(env[var]) for var in TORCHRUN_VARS)
    except ValueError:
        raise ConfigError("RANK, LOCAL_RANK and WORLD_SIZE must be whole numbers (torchrun sets them)") from None
    return DistContext(rank=rank, local_rank=local_rank, world_size=world)


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group when torchrun started several processes: gloo on CPU, NCCL on CUDA (each process on
    its own GPU, cuda:LOCAL_RANK). Returns this process's context; a no-op returning SINGLE otherwise.

    Blocks until every process of the run has joined (torchrun's rendezvous).
    """
    ctx = launch_context()
    if ctx is None or not ctx.enabled:
        return SINGLE
    if dist.is_initialized():
        return context()
    kind = resolve_device(device)
    if kind == "mps":
        raise ConfigError("device: distributed training runs on CPUs (gloo) or CUDA GPUs (nccl), not on mps")
    if kind == "cuda":
        # Before the process group exists, so NCCL and every later .cuda() use this process's own GPU.
        gpu = torch.device(resolve_device(device, ctx.local_rank))
        torch.cuda.set_device(gpu)
        dist.init_process_group(backend="nccl", device_id=gpu)
    else:
        dist.init_process_group(backend="gloo")
    return context()


def context() -> DistContext:
    """This process's place in the running process group; SINGLE when none is running."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    rank = dist.get_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    return DistContext(rank=rank, local_rank=local_rank, world_size=dist.get_world_size(),
                       backend=str(dist.get_backend()))


def cleanup() -> None:
    """Leave the process group (if any). Prefer `process_group()`, which waits for the others first."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


# How long a finished process waits, without holding the GIL, before it leaves (see process_group).
DRAIN_S = 0.2


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[DistContext]:
    """`init_distributed(device)` for the body; at its end, every process waits for the others, then leaves.

    Why the wait, and the pause after it: gloo's worker threads hold the last references to finished collectives
    (and their tensors) a little after the caller has its result, and `destroy_process_group` does not join those
    threads. If one of them lets go of a tensor while the interpreter is shutting down, it needs the GIL and the
    process aborts ("terminate called without an active exception"; seen here in about 1 run in 15 on a loaded
    2-core machine, with a core dump showing ~AsyncAllreduceWork on a gloo thread during Py_FinalizeEx; a known
    PyTorch problem, see pytorch/pytorch#179291). Waiting for everyone and then sleeping DRAIN_S seconds, which
    releases the GIL, lets those threads finish first.

    After an error the process leaves without this teardown, which is collective (with NCCL it can hang when another
    process is stuck in a collective); torchrun then stops the others, since this process exits with an error.
    """
    ctx = init_distributed(device)
    yield ctx  # an exception propagates from here, skipping the teardown
    if ctx.enabled:
        barrier()
        time.sleep(DRAIN_S)
        cleanup()


def any_rank(flag: bool, device: str | torch.device) -> bool:
    """True on every process when `flag` is True on at least one: a decision all processes take together.

    A stop asked for in one process (its stop_event) must stop all of them at the same step, or the others would
    wait forever for that process's gradients.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar tensor over all processes (the value itself in a single process).

    Summed then divided: gloo has no AVG reduction. Every process gets the same result, so a NaN anywhere is a NaN
    everywhere and all processes stop together.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / dist.get_world_size()

"""Run by tests/test_distributed.py under torchrun (2 CPU processes, gloo): do the processes of a distributed run
take the same decisions at the same step, and does accumulation under DDP train the single-process weights?

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_agreement.py OUT_DIR

Three trainings in one process group, each with a fresh model:
1. stop: rank 1 alone sets its stop_event during its 5th step; every rank must stop after step 5.
2. diverge: rank 1 alone gets a NaN loss at its 4th step; every rank must raise TrainingDivergedError at step 4 and
   keep the same finite weights.
3. accumulate: batch 2 x 2 accumulation steps x 2 processes; rank 0 saves its weights to OUT_DIR/accumulate.pt.
Each rank writes what it saw to OUT_DIR/rank<N>.json.
"""

from __future__ import annotations

from dataclasses import replace
import json
import sys
import threading
from pathlib import Path

import torch

from cutellm import ModelConfig, TrainConfig, TrainingDivergedError, prepare_training, train

from cutellm.fast import distributed

TEXT = " ".join(["the cat sat on the mat.", "the dog ran to the park.", "the bird sang in the tree.",
                 "a cow eats green grass.", "the sun is hot and the sky is blue."] * 20)
MODEL = ModelConfig(vocab_size=40, d_model=32, n_heads=2, n_layers=1, block_size=8, dropout=0.0)
TRAIN = TrainConfig(max_steps=15, batch_size=2, learning_rate=1e-2, warmup_steps=2, eval_interval=5, seed=5,
                    device="cpu", precision="fp32", num_threads=1)   # fp32: compared with one process to 5e-5
ACCUMULATE = replace(TRAIN, grad_accum_steps=2)


def on_training_forward(model: torch.nn.Module, call: int, action) -> torch.utils.hooks.RemovableHandle:
    """Run `action(output)` at the model's `call`-th training forward pass; its return value replaces the output."""
    calls = [0]

    def hook(module, inputs, output):
        if module.training:
            calls[0] += 1
            if calls[0] == call:
                return action(output)
        return None

    return model.register_forward_hook(hook)


def checksum(model: torch.nn.Module) -> float:
    return float(sum(p.detach().double().sum() for p in model.parameters()))


def main(out_dir: Path) -> None:
    with distributed.process_group("cpu") as ctx:
        report: dict = {"rank": ctx.rank, "world_size": ctx.world_size, "backend": ctx.backend}
        # 1. A stop asked for in one process only.
        model, _, dataset = prepare_training(TEXT, MODEL, TRAIN)
        stop, calls = threading.Event(), []
        if ctx.rank == 1:
            on_training_forward(model, 5, lambda output: stop.set())
        result = train(model, dataset, TRAIN, on_step=calls.append, stop_event=stop)
        report["stop"] = {"status": result.status, "steps": result.steps, "on_step_calls": len(calls),
                          "final_val_loss": result.final_val_loss}

        # 2. A NaN loss in one process only.
        model, _, dataset = prepare_training(TEXT, MODEL, TRAIN)
        if ctx.rank == 1:
            on_training_forward(model, 4, lambda output: (output[0], output[1] * float("nan")))
        try:
            train(model, dataset, TRAIN)
            report["diverge"] = {"raised": False}
        except TrainingDivergedError as err:
            report["diverge"] = {"raised": True, "message": str(err), "steps": err.result.steps,
                                 "checksum": checksum(model),
                                 "finite": all(bool(torch.isfinite(p).all()) for p in model.parameters())}

        # 3. Gradient accumulation under DDP.
        model, _, dataset = prepare_training(TEXT, MODEL, ACCUMULATE)
        result = train(model, dataset, ACCUMULATE)
        report["accumulate"] = {"global_batch_size": result.global_batch_size, "world_size": result.world_size,
                                "losses": [m.train_loss for m in result.history]}
        if ctx.is_main:
            torch.save(model.state_dict(), out_dir / "accumulate.pt")
    (out_dir / f"rank{ctx.rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""Does data-parallel training (torchrun + DDP) pay off on this machine? Tokens/s of the benchmark's model and recipe
for one process and for two processes, at the same global batch and at twice the batch.

    python bench/ddp_scaling.py [--corpus ../shared/corpora/tinyshakespeare.txt] [--steps 200] [--repeats 2]

Each layout trains `cutellm.lab.bench`'s configuration (character level, 4 layers x 4 heads, width 128, context 64,
nanoGPT's learning-rate schedule, dropout 0, every offset a window) for `--steps` iterations in fresh processes:
`python -m cutellm`-style single processes, or `torch.distributed.run --standalone --nproc_per_node=2` (gloo). The
layouts alternate `--repeats` times so a busy neighbour slows them all alike. Printed per layout: the median over
runs of the per-step tokens/s that train() reports (global tokens per step / step time, first 10 steps left out) and
of the wall time of the steps (evaluations at the last step included, start-up excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (name, processes, threads per process, batch per process)
LAYOUTS = [
    ("1 process x 2 threads, batch 12", 1, 2, 12),
    ("1 process x 1 thread, batch 12", 1, 1, 12),
    ("2 processes x 1 thread, batch 6 + 6 = 12", 2, 1, 6),
    ("1 process x 2 threads, batch 24", 1, 2, 24),
    ("2 processes x 1 thread, batch 12 + 12 = 24", 2, 1, 12),
]

WORKER = """
import json, sys, torch
from dataclasses import replace
from cutellm.fast import distributed
from cutellm.lab.bench import bench_setup
from cutellm.data import load_corpus
corpus, steps, threads, batch, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
with distributed.process_group("cpu") as ctx:
    model, tok, ds, cfg = bench_setup(load_corpus(corpus, clean=False), steps=steps, device="cpu", threads=threads)
    cfg = replace(cfg, batch_size=batch, eval_interval=steps)
    from cutellm.training import train
    r = train(model, ds, cfg)
if ctx.is_main:
    json.dump({"tokens_per_s": r.median_tokens_per_s, "steps_s": r.history[-1].elapsed_s,
               "global_batch": r.global_batch_size, "world_size": r.world_size,
               "threads": torch.get_num_threads()}, open(out, "w"))
"""


def run_layout(corpus: Path, steps: int, processes: int, threads: int, batch: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        script, out = Path(tmp) / "worker.py", Path(tmp) / "out.json"
        script.write_text(WORKER)
        args = [str(script), str(corpus), str(steps), str(threads), str(batch), str(out)]
        if processes > 1:
            args = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *args]
        subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True, capture_output=True)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    runs: dict[str, list[dict]] = {name: [] for name, *_ in LAYOUTS}
    for _ in range(args.repeats):
        for name, processes, threads, batch in LAYOUTS:
            runs[name].append(run_layout(Path(args.corpus), args.steps, processes, threads, batch))
            print(f"{name}: {runs[name][-1]['tokens_per_s']:,.0f} tokens/s", file=sys.stderr)

    print(f"| layout ({args.steps} steps, median of {args.repeats}) | tokens/s | wall time of the steps (s) |")
    print("|---|---:|---:|")
    for name, results in runs.items():
        rate = statistics.median(r["tokens_per_s"] for r in results)
        wall = statistics.median(r["steps_s"] for r in results)
        print(f"| {name} | {rate:,.0f} | {wall:.1f} |")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

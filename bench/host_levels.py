"""Does this host have fast and slow spells, and how do we compare two runs across them?

    python bench/host_levels.py [--seconds 240] [--corpus ../shared/corpora/tinyshakespeare.txt]
    OMP_NUM_THREADS=1 python bench/host_levels.py   # the same with one thread per process

On the AMD EPYC 2-core host of round twelve a training step of the benchmark model took either ~33 ms or ~44 ms,
switching every 10-60 s, in the middle of a run as often as between runs (bench/README.md, "Speed, round twelve").
Two processes that take turns running 20 steps each switch *together*: the slow spells are the host's (a neighbour
on the same physical machine, presumably sharing its caches and memory bandwidth), not something a process does. A
512x512 matmul moved only ~3% at the same time, so a step's small, memory-bound kernels feel it most. The spells
hit only work spread over both cores: with one thread per process the same host kept one level for 200 s; right
after, with two threads, it had both within 200 s (round thirteen). What slows is what the two threads share.

This script shows it on any host: it starts two such processes, lets them take turns, prints each turn's ms per
step for both and how often they were on the same level. The functions below are what bench/app_overhead.py uses to
take the spells out of its comparison: split the step times into the two levels (if there are two), and price every
step and evaluation of a run at the fast level.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Two levels count as two only if they are this far apart (a ratio) and each holds this share of the steps.
MIN_LEVEL_RATIO = 1.15
MIN_LEVEL_SHARE = 0.10


@dataclass(frozen=True)
class HostLevels:
    """The host's two speeds as seen in step times (seconds): a step slower than `split` ran in a slow spell, which
    made it `step_factor` times slower; an evaluation after such a step was `eval_factor` times slower."""

    split: float
    step_factor: float
    eval_factor: float

    def is_slow(self, step_time: float) -> bool:
        return step_time > self.split


def two_levels(times: list[float]) -> tuple[float, float, float] | None:
    """(fast median, slow median, split) of `times` if they fall into two levels (two-means on their logarithms,
    the levels >= MIN_LEVEL_RATIO apart and each >= MIN_LEVEL_SHARE of them); None if they do not."""
    logs = sorted(math.log(t) for t in times if t > 0)
    if len(logs) < 20:
        return None
    split = statistics.median(logs)
    for _ in range(50):
        low, high = [x for x in logs if x <= split], [x for x in logs if x > split]
        if not low or not high:
            return None
        new = (statistics.fmean(low) + statistics.fmean(high)) / 2
        if new == split:
            break
        split = new
    low, high = [x for x in logs if x <= split], [x for x in logs if x > split]
    if min(len(low), len(high)) < MIN_LEVEL_SHARE * len(logs):
        return None
    fast, slow = math.exp(statistics.median(low)), math.exp(statistics.median(high))
    return (fast, slow, math.exp(split)) if slow / fast >= MIN_LEVEL_RATIO else None


def host_levels(runs: list[dict]) -> HostLevels | None:
    """The levels of the steps of `runs` (each with "step_times_s" and "eval_times_s" as in TrainResult.summary();
    give the direct runs, whose steps nothing else slows), or None if the host had one level. The first 10 steps of
    a run (warm-up) are left out."""
    levels = two_levels([t for run in runs for t in run["step_times_s"][10:]])
    if levels is None:
        return None
    fast, slow, split = levels
    evals = {False: [], True: []}
    for run in runs:
        for step, seconds in run["eval_times_s"][:-1]:   # the last one may read more windows (see training.py)
            evals[run["step_times_s"][step - 1] > split].append(seconds)
    eval_factor = (statistics.median(evals[True]) / statistics.median(evals[False])
                   if min(len(evals[False]), len(evals[True])) >= 5 else slow / fast)
    return HostLevels(split=split, step_factor=slow / fast, eval_factor=eval_factor)


def at_fast_level(run: dict, levels: HostLevels | None) -> dict[str, float]:
    """`run` (wall_s, steps_s, eval_s, final_eval_s and the step-by-step times) with its slow spells priced at the
    fast level, in the same keys, so that what compares runs compares these too: steps and evaluations (the final
    one by the level of the last step) priced, the rest as measured (it is not compute); and the share of its steps
    that were slow."""
    steps, evals = run["step_times_s"], run["eval_times_s"]
    if levels is None:
        step_s, eval_s, slow = sum(steps), sum(t for _, t in evals), 0
    else:
        step_s = sum(t / levels.step_factor if levels.is_slow(t) else t for t in steps)
        eval_s = sum(t / levels.eval_factor if levels.is_slow(steps[s - 1]) else t for s, t in evals)
        slow = sum(levels.is_slow(t) for t in steps)
    final = run["final_eval_s"]
    if levels is not None and steps and levels.is_slow(steps[-1]):
        final /= levels.eval_factor
    rest = run["wall_s"] - run["steps_s"] - run["eval_s"]
    return {"steps_s": step_s, "eval_s": eval_s + final, "wall_s": step_s + eval_s + final + rest,
            "slow_share": slow / len(steps) if steps else 0.0}


# --- the demonstration: two processes taking turns ----------------------------------------------------------------

TURN_STEPS = 20


def steps_in_turns(conn, seed: int, corpus: Path) -> None:
    """A child: build the benchmark model, then run TURN_STEPS bare training steps each time it is told to."""
    sys.path.insert(0, str(ROOT))
    import torch

    from cutellm import TrainConfig, prepare_training
    from cutellm.data import clean_corpus
    from cutellm.devices import resolve_precision
    from cutellm.fast.memory import keep_freed_memory
    from cutellm.lab.bench import BENCH_MODEL, BENCH_TRAIN
    from cutellm.training import batch_plan, make_optimizer, train_step

    keep_freed_memory()
    text = clean_corpus(corpus.read_text(encoding="utf-8"))
    tc = TrainConfig(batch_size=BENCH_TRAIN.batch_size, max_steps=10**9, learning_rate=BENCH_TRAIN.learning_rate,
                     seed=BENCH_TRAIN.seed)
    model, _, ds = prepare_training(text, BENCH_MODEL, tc, tokenizer_kind="char")
    optimizer, plan = make_optimizer(model, tc), batch_plan(ds.train.size(0), tc, 1)
    last_good = [p.detach().clone() for p in model.parameters()]
    precision = resolve_precision(tc.precision, "cpu")   # as train() picks it
    gen, step = torch.Generator().manual_seed(seed), 0
    model.train()
    conn.send("ready")
    while conn.recv() == "go":
        began = time.perf_counter()
        for _ in range(TURN_STEPS):
            rows = torch.randint(0, ds.train.size(0), (tc.batch_size,), generator=gen)
            train_step(model, optimizer, ds.train, rows, plan, tc, step, device="cpu", precision=precision,
                       last_good=last_good, loss_mask=ds.train_mask)
            step += 1
        conn.send((time.perf_counter() - began) / TURN_STEPS)


def in_turns(children: list[tuple], seconds: float) -> list[tuple[float, float]]:
    """Start two children, each a (target, args) run as target(conn, *args) in a process of its own that answers
    "ready", then a time per step for each "go" until "stop"; let them take turns for `seconds`, which goes first
    alternating from round to round. One pair of times per round, in the children's order."""
    ctx = mp.get_context("spawn")
    conns = []
    for target, args in children:
        ours, theirs = ctx.Pipe()
        ctx.Process(target=target, args=(theirs, *args), daemon=True).start()
        conns.append(ours)
    for conn in conns:
        conn.recv()
    rounds, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        row = [0.0, 0.0]
        for i in ((0, 1) if len(rounds) % 2 == 0 else (1, 0)):
            conns[i].send("go")
            row[i] = conns[i].recv()
        rounds.append((row[0], row[1]))
    for conn in conns:
        conn.send("stop")
    return rounds


def take_turns(seconds: float, corpus: Path) -> list[tuple[float, float]]:
    """Seconds per step of two processes running TURN_STEPS steps in turn, one pair per round, for `seconds`."""
    return in_turns([(steps_in_turns, (seed, corpus)) for seed in (0, 1)], seconds)


def agreement(rounds: list[tuple[float, float]]) -> dict:
    """How the two processes' turns fell on the host's levels: the levels (from all turns), and the share of rounds
    in which both were fast, both slow, or one of each."""
    levels = two_levels([t for pair in rounds for t in pair])
    if levels is None:
        return {"two_levels": False, "rounds": len(rounds)}
    fast, slow, split = levels
    kinds = [(a > split) + (b > split) for a, b in rounds]
    return {"two_levels": True, "rounds": len(rounds), "fast_ms": 1000 * fast, "slow_ms": 1000 * slow,
            "both_fast": kinds.count(0) / len(kinds), "both_slow": kinds.count(2) / len(kinds),
            "one_of_each": kinds.count(1) / len(kinds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sys.path.insert(0, str(ROOT))
    from cutellm.lab.bench import DEFAULT_CORPUS

    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="the text the two processes train on")
    args = parser.parse_args()
    if not args.corpus.is_file():
        parser.error(f"no corpus at {args.corpus}: pass --corpus PATH")
    rounds = take_turns(args.seconds, args.corpus.resolve())
    print("ms per step, process A / process B, turn by turn:")
    print("  ".join(f"{1000 * a:.0f}/{1000 * b:.0f}" for a, b in rounds))
    found = agreement(rounds)
    if not found["two_levels"]:
        print(f"one level: no slow spells in {found['rounds']} rounds")
        return
    print(f"two levels: {found['fast_ms']:.1f} and {found['slow_ms']:.1f} ms per step; of {found['rounds']} rounds "
          f"{100 * found['both_fast']:.0f}% both fast, {100 * found['both_slow']:.0f}% both slow, "
          f"{100 * found['one_of_each']:.0f}% one of each (a switch between the two turns, or the processes' own)")


if __name__ == "__main__":
    main()

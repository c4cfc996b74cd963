"""CuteGPT against nanoGPT itself, on this machine: alternating runs of the same recipe, per iteration.

    git clone https://github.com/karpathy/nanoGPT /tmp/nanogpt     # once, wherever you like; never into this repo
    python bench/nanogpt_pairs.py --nanogpt /tmp/nanogpt --pairs 3 --iters 600

`make bench` compares with nanoGPT figures measured once (cutellm.lab.bench.REFERENCE); a host of another kind makes
that comparison meaningless. This script runs nanoGPT's own `train.py` (its README's CPU recipe for tiny Shakespeare:
4 layers, 4 heads, width 128, context 64, batch 12, dropout 0, no compile) and `python -m cutellm bench` with the
same shape and recipe, one after the other, `--pairs` times, each in a fresh process. Both train `--iters`
iterations with the same schedule (warmup a tenth of the run, cosine decay to a tenth of 1e-3 at the end).

Per iteration is the median of each run's step times after the first 10, evaluation steps left out (nanoGPT prints
every iteration's `dt`; cutellm's bench reports the same median). The validation loss after the last iteration
(nanoGPT's estimate: 20 random batches) shows the two reached the same place. Each cutellm run also gives its
fraction of the matmul peak and its KV-cache speed-up, measured in that run. Prints a table and writes
bench/nanogpt_pairs.json.

nanoGPT's files are copied into a temporary folder with the corpus as its `input.txt` (its prepare.py reads it
there instead of downloading), so neither checkout is touched.

    python bench/nanogpt_pairs.py --nanogpt /tmp/nanogpt --turns 180

A host with slow spells (bench/host_levels.py) can put one run of a pair in a spell and the other not. `--turns
SECONDS` compares per iteration at the same moments instead: two processes, one training nanoGPT's own model (its
model.py and its training iteration on the CPU: fp32, gradient clipping at 1.0, its AdamW), the other CuteGPT's
benchmark model (as bench/host_levels.py trains it), take turns of 20 iterations for that long, and each round
gives one ratio. No loss is compared there (the pairs do that); prints the medians and writes
bench/nanogpt_turns.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
DEFAULT_OUT = ROOT / "bench" / "nanogpt_pairs.json"
TURNS_OUT = ROOT / "bench" / "nanogpt_turns.json"
NANOGPT_FILES = ("train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py",
                 "data/shakespeare_char/prepare.py")
SKIP_FIRST = 10   # warm-up iterations left out of the median, as cutellm's bench does

ITER_LINE = re.compile(r"^iter (\d+): loss ([\d.]+), time ([\d.]+)ms")
EVAL_LINE = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)")


# nanoGPT README's CPU recipe for tiny Shakespeare: its model's shape, its batch.
RECIPE = {"block_size": 64, "batch_size": 12, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0}


def nanogpt_args(iters: int, out_dir: Path) -> list[str]:
    """nanoGPT README's CPU recipe, with the run's length and a schedule like cutellm's for `iters` steps."""
    return ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
            "--log_interval=1", *(f"--{name}={value}" for name, value in RECIPE.items()),
            f"--max_iters={iters}", f"--lr_decay_iters={iters}",
            f"--warmup_iters={min(100, iters // 10)}", f"--eval_interval={iters}", f"--out_dir={out_dir}"]


def prepare_nanogpt(checkout: Path, corpus: Path, workdir: Path) -> Path:
    """A copy of nanoGPT's training files in `workdir`, its character data prepared from `corpus`."""
    missing = [name for name in NANOGPT_FILES if not (checkout / name).is_file()]
    if missing:
        raise SystemExit(f"{checkout} is not a nanoGPT checkout (missing {', '.join(missing)})")
    for name in NANOGPT_FILES:
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(checkout / name, workdir / name)
    data = workdir / "data" / "shakespeare_char"
    shutil.copy(corpus, data / "input.txt")
    subprocess.run([sys.executable, "prepare.py"], cwd=data, check=True, capture_output=True)
    return workdir


def parse_nanogpt(output: str, iters: int) -> dict:
    """Per-iteration times and the last validation estimate from nanoGPT's log lines."""
    times, evals = {}, {}
    for line in output.splitlines():
        if m := ITER_LINE.match(line):
            times[int(m[1])] = float(m[3])
        elif m := EVAL_LINE.match(line):
            evals[int(m[1])] = (float(m[2]), float(m[3]))
    # An iteration that began with an evaluation carries its time in dt: left out, as cutellm's median does.
    steady = [ms for it, ms in times.items() if it >= SKIP_FIRST and it not in evals]
    if not steady or iters not in evals:
        raise RuntimeError(f"nanoGPT's output has no timed iterations or no evaluation at {iters}:\n{output[-2000:]}")
    return {"ms_per_iter": round(statistics.median(steady), 2), "iterations": len(times),
            "val_loss": evals[iters][1], "train_loss": evals[iters][0]}


def run_nanogpt(workdir: Path, iters: int) -> dict:
    with tempfile.TemporaryDirectory() as out_dir:
        proc = subprocess.run([sys.executable, "train.py", *nanogpt_args(iters, Path(out_dir))], cwd=workdir,
                              capture_output=True, text=True, check=True)
    return parse_nanogpt(proc.stdout, iters)


def run_cutellm(corpus: Path, iters: int) -> dict:
    """`python -m cutellm bench --steps iters`: its per-iteration median and what the same run measured besides."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        subprocess.run([sys.executable, "-m", "cutellm", "bench", "--steps", str(iters), "--corpus", str(corpus),
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        r = json.loads(out.read_text())
    t, c, g = r["training"], r["compute"], r["generation"]
    return {"ms_per_iter": t["ms_per_iter"], "val_loss": t["estimate_val_loss"], "train_loss": t["estimate_train_loss"],
            "fraction_of_peak": c["fraction_of_peak"], "matmul_peak_gflops": c["matmul_peak_gflops"],
            "cache_speedup": g["cache_speedup"], "cache_identical": g["identical"]}


def _nanogpt_turns(conn, workdir: Path, iters: int) -> None:
    """A child: nanoGPT's model from the prepared copy, trained as its train.py does on the CPU with RECIPE (and
    train.py's and the config's other settings: no bias, fp32, AdamW with weight decay 0.1 and betas (0.9, 0.99),
    gradient clipping at 1.0), `iters` iterations each time it is told to."""
    import numpy as np
    import torch

    sys.path.insert(0, str(workdir))   # nanoGPT's model.py, read from the copy
    from model import GPT, GPTConfig

    data_dir = workdir / "data" / "shakespeare_char"
    data = np.memmap(data_dir / "train.bin", dtype=np.uint16, mode="r")
    vocab = pickle.loads((data_dir / "meta.pkl").read_bytes())["vocab_size"]
    torch.manual_seed(1337)
    shape = {name: value for name, value in RECIPE.items() if name != "batch_size"}
    block, batch = RECIPE["block_size"], RECIPE["batch_size"]
    model = GPT(GPTConfig(vocab_size=vocab, bias=False, **shape))
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    model.train()
    conn.send("ready")
    while conn.recv() == "go":
        began = time.perf_counter()
        for _ in range(iters):
            ix = torch.randint(len(data) - block, (batch,))   # train.py's get_batch
            x = torch.stack([torch.from_numpy(data[i:i + block].astype(np.int64)) for i in ix])
            y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + block].astype(np.int64)) for i in ix])
            _, loss = model(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        conn.send((time.perf_counter() - began) / iters)


def take_turns(workdir: Path, corpus: Path, seconds: float) -> list[tuple[float, float]]:
    """Seconds per iteration of nanoGPT and of CuteGPT (the benchmark model's bare training steps, as
    bench/host_levels.py runs them), one pair per round of turns of TURN_STEPS iterations each, for `seconds`."""
    from bench.host_levels import TURN_STEPS, in_turns, steps_in_turns

    return in_turns([(_nanogpt_turns, (workdir, TURN_STEPS)), (steps_in_turns, (0, corpus))], seconds)


def summarise_turns(rounds: list[tuple[float, float]]) -> dict:
    """Each round's speed ratio (nanoGPT's time per iteration / CuteGPT's), their median and spread, and the median
    ms per iteration of each."""
    ratios = sorted(n / c for n, c in rounds)
    return {"rounds": len(rounds), "median_ratio": round(statistics.median(ratios), 3),
            "ratio_range": [round(ratios[0], 3), round(ratios[-1], 3)],
            "nanogpt_ms_per_iter": round(1000 * statistics.median(n for n, _ in rounds), 2),
            "cutellm_ms_per_iter": round(1000 * statistics.median(c for _, c in rounds), 2)}


def summarise(pairs: list[dict]) -> dict:
    """Each pair's speed ratio (nanoGPT's time per iteration / cutellm's) and the medians."""
    ratios = [round(p["nanogpt"]["ms_per_iter"] / p["cutellm"]["ms_per_iter"], 3) for p in pairs]
    cute = [p["cutellm"] for p in pairs]
    return {"ratios": ratios, "median_ratio": round(statistics.median(ratios), 3),
            "median_fraction_of_peak": round(statistics.median(c["fraction_of_peak"] for c in cute), 3),
            "median_cache_speedup": round(statistics.median(c["cache_speedup"] for c in cute), 2),
            "val_loss_gap": round(statistics.median(p["cutellm"]["val_loss"] - p["nanogpt"]["val_loss"]
                                                    for p in pairs), 4)}


def format_table(pairs: list[dict], summary: dict) -> str:
    rows = ["| pair | nanoGPT ms/iter | CuteGPT ms/iter | speed-up | val loss nanoGPT / CuteGPT | fraction of peak "
            "| KV cache |", "|---|---:|---:|---:|---:|---:|---:|"]
    for i, (p, ratio) in enumerate(zip(pairs, summary["ratios"]), 1):
        n, c = p["nanogpt"], p["cutellm"]
        rows.append(f"| {i} | {n['ms_per_iter']:.1f} | {c['ms_per_iter']:.1f} | {ratio:.2f}x | "
                    f"{n['val_loss']:.4f} / {c['val_loss']:.4f} | {c['fraction_of_peak']:.0%} | "
                    f"{c['cache_speedup']:.2f}x |")
    rows.append(f"| median | | | **{summary['median_ratio']:.2f}x** | gap {summary['val_loss_gap']:+.4f} | "
                f"**{summary['median_fraction_of_peak']:.0%}** | **{summary['median_cache_speedup']:.2f}x** |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nanogpt", type=Path, required=True, help="a nanoGPT checkout (read only)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--iters", type=int, default=600)
    parser.add_argument("--turns", type=float, metavar="SECONDS",
                        help="instead of whole runs, take turns of 20 iterations for this long (see above)")
    parser.add_argument("--out", type=Path, help=f"default: {DEFAULT_OUT.name}, or {TURNS_OUT.name} with --turns")
    args = parser.parse_args()
    if not args.corpus.is_file():
        raise SystemExit(f"no corpus at {args.corpus}; pass --corpus PATH (tiny Shakespeare)")
    if args.turns:
        turns_main(args)
        return
    args.out = args.out or DEFAULT_OUT
    load = os.getloadavg()
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = prepare_nanogpt(args.nanogpt, args.corpus, Path(tmp))
        for i in range(args.pairs):
            pair = {"nanogpt": run_nanogpt(workdir, args.iters), "cutellm": run_cutellm(args.corpus, args.iters)}
            pairs.append(pair)
            print(f"pair {i + 1}: nanoGPT {pair['nanogpt']['ms_per_iter']:.1f} ms/iter, "
                  f"CuteGPT {pair['cutellm']['ms_per_iter']:.1f} ms/iter", flush=True)
    summary = summarise(pairs)
    print("\n" + format_table(pairs, summary))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.nanogpt, capture_output=True,
                            text=True).stdout.strip() or None
    # the same machine description make bench writes
    from cutellm.lab.bench import machine_info
    result = {"benchmark": "CuteGPT vs nanoGPT, alternating pairs", "nanogpt_commit": commit, "iters": args.iters,
              "machine": machine_info(), "load_avg_start": list(load), "load_avg_end": list(os.getloadavg()),
              "pairs": pairs, **summary}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


def turns_main(args: argparse.Namespace) -> None:
    from bench.host_levels import TURN_STEPS
    from cutellm.lab.bench import machine_info

    with tempfile.TemporaryDirectory() as tmp:
        workdir = prepare_nanogpt(args.nanogpt, args.corpus, Path(tmp))
        rounds = take_turns(workdir, args.corpus.resolve(), args.turns)
    summary = summarise_turns(rounds)
    print("ms per iteration, nanoGPT / CuteGPT, turn by turn:")
    print("  ".join(f"{1000 * n:.0f}/{1000 * c:.0f}" for n, c in rounds))
    print(f"{summary['rounds']} rounds: nanoGPT {summary['nanogpt_ms_per_iter']:.1f} ms, CuteGPT "
          f"{summary['cutellm_ms_per_iter']:.1f} ms per iteration (medians); nanoGPT / CuteGPT "
          f"{summary['median_ratio']:.2f}x (rounds {summary['ratio_range'][0]:.2f}-{summary['ratio_range'][1]:.2f}x)")
    out = args.out or TURNS_OUT
    out.write_text(json.dumps({"benchmark": f"CuteGPT vs nanoGPT, turns of {TURN_STEPS} iterations",
                               "machine": machine_info(), "seconds": args.turns,
                               "turns_s": [list(r) for r in rounds], **summary}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()

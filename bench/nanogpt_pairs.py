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
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
DEFAULT_OUT = ROOT / "bench" / "nanogpt_pairs.json"
NANOGPT_FILES = ("train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py",
                 "data/shakespeare_char/prepare.py")
SKIP_FIRST = 10   # warm-up iterations left out of the median, as cutellm's bench does

ITER_LINE = re.compile(r"^iter (\d+): loss ([\d.]+), time ([\d.]+)ms")
EVAL_LINE = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)")


def nanogpt_args(iters: int, out_dir: Path) -> list[str]:
    """nanoGPT README's CPU recipe, with the run's length and a schedule like cutellm's for `iters` steps."""
    return ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
            "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
            "--dropout=0.0", f"--max_iters={iters}", f"--lr_decay_iters={iters}",
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
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if not args.corpus.is_file():
        raise SystemExit(f"no corpus at {args.corpus}; pass --corpus PATH (tiny Shakespeare)")
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
    from cutellm.lab.bench import machine_info   # the same machine description make bench writes
    result = {"benchmark": "CuteGPT vs nanoGPT, alternating pairs", "nanogpt_commit": commit, "iters": args.iters,
              "machine": machine_info(), "load_avg_start": list(load), "load_avg_end": list(os.getloadavg()),
              "pairs": pairs, **summary}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()

"""Time to quality: how long `make run` (the shipped model's recipe) takes to train, and the validation loss it
reaches, against an earlier commit's `make run` on the same machine.

    python bench/time_to_quality.py --baseline f2f0003 --repeat 2

Checks the baseline revision out into a temporary git worktree, then alternates the two trainings (baseline, this
tree, baseline, this tree, ...) so a busy neighbour slows both alike. Each is the CLI's `train` on
data/training_data.txt in a fresh process, as `make run` calls it (into a temporary file: models/ is not touched).
Wall time is the whole command (start-up, tokenizer, windows, training, final losses, save), as a learner waits for
it. Prints a table and writes bench/time_to_quality.json: every run, the medians and the wall-time ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = "data/training_data.txt"
DEFAULT_OUT = ROOT / "bench" / "time_to_quality.json"
# Read after training: the figures every checkpoint's metadata carries (cutellm.training.TrainResult.summary).
READ_META = ("import json, sys; from cutellm.checkpoint import load_checkpoint; "
             "_, _, m = load_checkpoint(sys.argv[1], with_meta=True); "
             "print(json.dumps({k: m.get(k) for k in ('final_val_loss', 'final_train_loss', 'steps', 'wall_time_s')}))")


def train_once(tree: Path, extra: list[str]) -> dict:
    """`python -m cutellm train --corpus data/training_data.txt` in `tree`: wall time and the saved losses."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.pth"
        env = {**os.environ, "PYTHONPATH": str(tree)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cutellm", "train", "--corpus", CORPUS, "--out", str(out), *extra],
                       cwd=tree, env=env, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        meta = subprocess.run([sys.executable, "-c", READ_META, str(out)], cwd=tree, env=env, check=True,
                              capture_output=True, text=True)
    return {"wall_s": round(wall, 2), **json.loads(meta.stdout.strip().splitlines()[-1])}


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Medians per side and the ratios the issue's target is stated in (this tree's wall time / the baseline's)."""
    med = {side: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "final_val_loss")}
           for side, rs in runs.items()}
    return {"median": med, "wall_ratio": round(med["current"]["wall_s"] / med["baseline"]["wall_s"], 3),
            "val_loss_change": round(med["current"]["final_val_loss"] - med["baseline"]["final_val_loss"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="f2f0003", help="the git revision to compare with (default: the "
                                                              "commit before the faster recipe)")
    parser.add_argument("--repeat", type=int, default=2, help="alternate the two trainings N times")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("args", nargs="*", help="extra `train` arguments for both sides, after --")
    args = parser.parse_args()
    load = os.getloadavg()
    runs: dict[str, list[dict]] = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            for i in range(args.repeat):
                for side, tree in (("baseline", base), ("current", ROOT)):
                    r = train_once(tree, args.args)
                    runs[side].append(r)
                    print(f"run {i + 1} {side:>8}: {r['wall_s']:6.1f} s wall, {r['steps']:,} steps, "
                          f"val loss {r['final_val_loss']:.4f}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    summary = summarise(runs)
    med = summary["median"]
    print(f"\n| `make run` | wall time (median) | val loss (median) |\n|---|---:|---:|\n"
          f"| {args.baseline} (baseline) | {med['baseline']['wall_s']:.1f} s | {med['baseline']['final_val_loss']:.4f} |\n"
          f"| this tree | {med['current']['wall_s']:.1f} s | {med['current']['final_val_loss']:.4f} |\n"
          f"\nwall-time ratio {summary['wall_ratio']:.3f} (this tree / baseline), load average before {load[0]:.2f}")
    result = {"benchmark": "time to quality (make run, A/B)", "baseline": args.baseline, "repeat": args.repeat,
              "nproc": os.cpu_count(), "load_avg_start": list(load), "load_avg_end": list(os.getloadavg()),
              "runs": runs, **summary}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()

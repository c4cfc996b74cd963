"""The GPU figures in one prepared run (issue 18.6): `make bench DEVICE=cuda`, the same compiled, and the shipped
model's recipe trained by a one-GPU `torchrun`; a summary table to paste into bench/README.md.

    python bench/gpu_run.py --out "$OUT"                              # on a machine with a CUDA GPU
    python bench/gpu_run.py --device cpu --quick --out /tmp/gpu_dry  # the same plumbing, here, in about a minute

The bench reads tiny Shakespeare from `--corpus` (default: cutellm.lab.bench's, next to the repository). A machine that
receives only the repository's working tree lacks that folder: copy the file to an ignored path first
(`cp ../shared/corpora/tinyshakespeare.txt bench/corpus.txt`, which .gitignore keeps out of commits) and pass
`--corpus bench/corpus.txt`.

Each step runs in its own process and is recorded whether it works or not, so one failing step (no compiler for
`--compile`, say) still leaves the others' figures. What it writes to `--out` (seven files, no model: the trained
checkpoint goes to a temporary folder): env.json, bench.json / bench.txt, bench_compiled.json / bench_compiled.txt,
train.txt (the torchrun log), summary.json and summary.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# What the core needs at import; a GPU image that lacks one is told so at once, before minutes of work.
NEEDED = ("torch", "numpy", "dotenv")
STEP_TIMEOUT_S = 900
READ_META = ("import json, sys; from cutellm.checkpoint import load_checkpoint; "
             "_, _, m = load_checkpoint(sys.argv[1], with_meta=True); "
             "print(json.dumps({k: m.get(k) for k in ('final_val_loss', 'final_train_loss', 'steps', 'wall_time_s', "
             "'device', 'precision')}))")


def environment(device: str) -> dict:
    import importlib.util

    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    env = {"python": platform.python_version(), "missing_modules": missing, "device": device}
    if "torch" not in missing:
        import torch

        env.update(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(),
                   gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                   gpus=torch.cuda.device_count() if torch.cuda.is_available() else 0)
    return env


def run_step(name: str, command: list[str], log: Path) -> dict:
    """Run `command` from the repository root; its output goes to `log`. Wall time and exit status, never raises."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=STEP_TIMEOUT_S,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        rc, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        rc, output = 124, f"{err.stdout or ''}{err.stderr or ''}\ntimed out after {STEP_TIMEOUT_S} s"
    log.write_text(f"$ {' '.join(command)}\n{output}")
    print(f"{name}: exit {rc} in {time.perf_counter() - t0:.0f} s (log: {log})", flush=True)
    return {"command": " ".join(command), "rc": rc, "wall_s": round(time.perf_counter() - t0, 1)}


def bench_figures(path: Path) -> dict | None:
    """The figures of one `cutellm bench` JSON that the summary reports."""
    if not path.is_file():
        return None
    r = json.loads(path.read_text())
    t, g, c, m = r["training"], r["generation"], r["compute"], r["machine"]
    return {"precision": m["precision"], "compile": m["compile"], "tokens_per_s": t["tokens_per_s"],
            "ms_per_iter": t["ms_per_iter"], "train_wall_s": t["wall_s"], "final_val_loss": t["final_val_loss"],
            "cached_tokens_per_s": g["cached_tokens_per_s"], "uncached_tokens_per_s": g["uncached_tokens_per_s"],
            "cache_speedup": g["cache_speedup"], "identical": g["identical"],
            "matmul_peak_gflops": c["matmul_peak_gflops"], "fraction_of_peak": c["fraction_of_peak"]}


def summary_table(summary: dict) -> str:
    env = summary["environment"]
    lines = [f"GPU run: {env.get('gpu') or env['device']}, torch {env.get('torch')}, CUDA {env.get('cuda')}, "
             f"Python {env['python']}", "",
             "| run | exit | precision | tokens/s | ms/iter | wall (s) | val loss | gen cached / uncached (tokens/s) "
             "| cache speed-up | matmul peak (GFLOP/s) | fraction of peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("bench", "bench_compiled"):
        step, f = summary["steps"].get(name), summary.get(name)
        if step is None:
            continue
        if f is None:
            lines.append(f"| {name} | {step['rc']} | | | | | | | | | |")
            continue
        lines.append(f"| {name} | {step['rc']} | {f['precision']}{' compiled' if f['compile'] else ''} "
                     f"| {f['tokens_per_s']:,.0f} | {f['ms_per_iter']:.2f} | {f['train_wall_s']:.1f} "
                     f"| {f['final_val_loss']} | {f['cached_tokens_per_s']:,.0f} / {f['uncached_tokens_per_s']:,.0f} "
                     f"| {f['cache_speedup']:.2f}x{'' if f['identical'] else ' (output differs)'} "
                     f"| {f['matmul_peak_gflops']:,.0f} | {f['fraction_of_peak']:.1%} |")
    train = summary["steps"]["train"]
    result = summary.get("train") or {}
    lines += ["", f"One-GPU torchrun train (`{train['command']}`): exit {train['rc']}, {train['wall_s']} s wall"
              + (f", {result.get('steps')} steps, validation loss {result.get('final_val_loss')}, "
                 f"{result.get('device')} {result.get('precision')}" if result else "")]
    if result and result.get("final_val_loss") is not None:
        lines[-1] = lines[-1].replace(str(result["final_val_loss"]), f"{result['final_val_loss']:.4f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from cutellm.lab.bench import DEFAULT_CORPUS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "bench" / "gpu"))
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu checks the plumbing anywhere")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--quick", action="store_true", help="bench --quick and a 20-step train (plumbing only)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled bench")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    env = environment(args.device)
    (out / "env.json").write_text(json.dumps(env, indent=2) + "\n")
    print(json.dumps(env), flush=True)
    if env["missing_modules"]:
        print(f"missing Python modules: {', '.join(env['missing_modules'])}; carry them as wheels", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not env.get("cuda_available"):
        print("torch sees no CUDA GPU here; pass --device cpu to check the plumbing", file=sys.stderr)
        return 2
    if not args.corpus.is_file():
        print(f"no corpus at {args.corpus}: see this script's docstring (--corpus)", file=sys.stderr)
        return 2

    py = sys.executable
    quick = ["--quick"] if args.quick else []
    bench = [py, "-m", "cutellm", "bench", "--device", args.device, "--corpus", str(args.corpus), *quick]
    steps, summary = {}, {"environment": env}
    steps["bench"] = run_step("bench", [*bench, "--out", str(out / "bench.json")], out / "bench.txt")
    summary["bench"] = bench_figures(out / "bench.json")
    if not args.no_compile:
        steps["bench_compiled"] = run_step("bench_compiled", [*bench, "--compile", "--out",
                                                              str(out / "bench_compiled.json")],
                                           out / "bench_compiled.txt")
        summary["bench_compiled"] = bench_figures(out / "bench_compiled.json")

    torchrun = shutil.which("torchrun")
    launcher = [torchrun] if torchrun else [py, "-m", "torch.distributed.run"]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "gpu_model.pth"
        steps["train"] = run_step("train", [*launcher, "--standalone", "--nproc_per_node=1", "-m", "cutellm",
                                            "train", "--device", args.device, "--out", str(model),
                                            *(["--steps", "20"] if args.quick else [])], out / "train.txt")
        if model.is_file():
            meta = subprocess.run([py, "-c", READ_META, str(model)], cwd=ROOT, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            summary["train"] = json.loads(meta.stdout.strip().splitlines()[-1]) if meta.returncode == 0 else None
    summary["steps"] = steps
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = summary_table(summary)
    (out / "summary.md").write_text(table)
    print(table)
    return 0 if all(s["rc"] == 0 for s in steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

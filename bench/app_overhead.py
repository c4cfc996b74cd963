"""How much slower is training in the app (background job + live chart redrawn in a real browser) than the same
training called directly, as the CLI does?

    python bench/app_overhead.py [--corpus ../shared/corpora/tinyshakespeare.txt] [--steps 2000] [--threads N]

Runs the benchmark's model and recipe (character level, 4 layers x 4 heads, width 128, context 64, batch 12, learning
rate 1e-3, dropout 0) twice on the same cleaned corpus: once through `train()` in a fresh process, once through the
app in headless Chromium (upload, settings, Train, the Train page left open so its chart keeps redrawing, Save).
Both use the app's recipe details (windows overlapping by half, a validation every 50 steps, 8 weight snapshots), so
the only difference is the job runner and the page. Prints both medians (TrainResult.median_tokens_per_s: per-step
throughput, first 10 steps left out), the slowdown, and where the extra wall time went: the steps, the evaluations
or the rest (TrainResult.steps_time_s and eval_time_s). Needs Chromium and playwright (requirements-dev.txt).

The host's own speed can move a run's wall time by more than the app does: on the AMD EPYC host of round twelve a
step took ~33 or ~44 ms in spells of 10-60 s that two processes meet together (bench/host_levels.py shows it). So
the script also compares each pair with those spells taken out (`at_the_same_level`: every step and evaluation that
fell in a slow spell priced at the fast level, the levels found in the direct runs), and reports what does not move
with the host: the CPU time that the page costs while the app trains, read from /proc (Linux) over the training:
Chromium's processes, and the server's CPU besides its training threads, each as a share of the machine. Writes
every figure to bench/app_overhead.json.

The app trains in a worker process of its own (cutellm/lab/jobs.py), so the server's CPU is all the page's: its
script runs, the live view's requests and the relay thread that reads the worker's messages.

Both runs train with the threads the app gives one run by default (cores / training slots: every core on up to
3 cores, where the page and the browser then take their CPU from the training's own cores). `--threads N` trains
both with N threads (the app's worker through CUTEGPT_TRAINING_SLOTS, its only thread setting): with fewer threads
than cores the page has a core of its own, as it would beside a run on a machine with cores to spare, and what is
left is the job's own cost.
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
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.host_levels import at_fast_level, host_levels  # after the path line above
from cutellm.lab.jobs import threads_per_slot, training_slots

SETTINGS = {"Block size (context)": 64, "d_model (width)": 128, "Attention heads": 4, "Layers": 4, "Dropout": 0.0,
            "Batch size": 12, "Learning rate": 0.001, "Seed": 1337}

DIRECT = """
import json, sys, torch
from cutellm import ModelConfig, TrainConfig, prepare_training, train
from cutellm.data import clean_corpus
from cutellm.fast.memory import keep_freed_memory
keep_freed_memory()   # as `python -m cutellm train` and the app's worker processes do
text = clean_corpus(open(sys.argv[1], encoding="utf-8").read())
steps = int(sys.argv[2])
mc = ModelConfig(vocab_size=1000, d_model=128, n_heads=4, n_layers=4, block_size=64, dropout=0.0)
tc = TrainConfig(batch_size=12, max_steps=steps, learning_rate=1e-3, seed=1337, eval_interval=max(10, steps // 40),
                 snapshots=8)
if int(sys.argv[3]):
    torch.set_num_threads(int(sys.argv[3]))   # else torch's default, as the app's worker on one slot: every core
model, tok, ds = prepare_training(text, mc, tc, tokenizer_kind="char")
r = train(model, ds, tc)
s = r.summary()
print(json.dumps({"median_tokens_per_s": r.median_tokens_per_s, "wall_s": r.wall_time_s,
                  "steps_s": r.steps_time_s, "eval_s": r.eval_time_s, "final_eval_s": r.final_eval_time_s,
                  "step_times_s": s["step_times_s"], "eval_times_s": s["eval_times_s"],
                  "threads": torch.get_num_threads()}))
"""


def direct(corpus: Path, steps: int, threads: int | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", DIRECT, str(corpus), str(steps), str(threads or 0)], cwd=ROOT,
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ticks(stat_path: Path) -> int | None:
    """utime + stime of a /proc/.../stat file, in clock ticks; None once the process or thread is gone."""
    try:
        fields = stat_path.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid` (children, their children, ...), pid -> command name."""
    parent, name = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            head, rest = text.rsplit(")", 1)
            parent[int(entry.name)], name[int(entry.name)] = int(rest.split()[1]), head.split("(", 1)[1]
    found, frontier = {}, [pid]
    while frontier:
        below = [p for p, up in parent.items() if up in frontier and p not in found]
        found.update({p: name[p] for p in below})
        frontier = below
    return found


def thread_ticks(pid: int) -> dict[int, int]:
    """CPU ticks of each thread of a process so far."""
    ticks = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        value = _ticks(task / "stat")
        if value is not None:
            ticks[int(task.name)] = value
    return ticks


@dataclass(frozen=True)
class CpuSample:
    at: float
    server_ticks: int               # the whole server process, threads that have ended included
    thread_ticks: dict[int, int]    # its threads alive now
    browser_ticks: dict[int, int]


class CpuWatch:
    """CPU time of the browser and of the server between two samples taken while the app trains."""

    def __init__(self, server_pid: int, browser_pids: list[int]):
        self.server_pid, self.browser_pids = server_pid, browser_pids

    def sample(self) -> CpuSample:
        return CpuSample(time.monotonic(), _ticks(Path(f"/proc/{self.server_pid}/stat")) or 0,
                         thread_ticks(self.server_pid),
                         {p: t for p in self.browser_pids if (t := _ticks(Path(f"/proc/{p}/stat"))) is not None})

    @staticmethod
    def between(first: CpuSample, last: CpuSample) -> dict:
        """The page's cost from `first` to `last`. The training threads (the training thread and its OpenMP workers,
        however many cores) are those alive at both samples and busy for more than half of the time between them;
        everything else the server did (its script runs end with their threads) is counted as the page's."""
        tick, seconds = os.sysconf("SC_CLK_TCK"), last.at - first.at
        alive = (t - first.thread_ticks[tid] for tid, t in last.thread_ticks.items() if tid in first.thread_ticks)
        training = sum(t for t in alive if t / tick > seconds / 2)
        browser = sum(t - first.browser_ticks.get(p, 0) for p, t in last.browser_ticks.items())
        return cpu_summary(seconds, browser / tick, training / tick, (last.server_ticks - first.server_ticks) / tick,
                           os.cpu_count())


def cpu_summary(seconds: float, browser_s: float, training_s: float, server_s: float, cpus: int) -> dict:
    """The page's CPU cost over `seconds` of training: the browser's, and the server's besides its training threads
    (`training_s` of its `server_s`), per 20 s and as a share of all `cpus`."""
    other, machine = server_s - training_s, seconds * cpus
    return {"seconds": seconds, "cpus": cpus, "browser_cpu_s": browser_s, "server_training_cpu_s": training_s,
            "server_other_cpu_s": other, "browser_s_per_20s": 20 * browser_s / seconds,
            "server_other_s_per_20s": 20 * other / seconds, "browser_share": browser_s / machine,
            "server_other_share": other / machine, "page_share": (browser_s + other) / machine}


def server_env(threads: int | None, cpus: int) -> dict[str, str]:
    """What the app's server needs in its environment to train with `threads` CPU threads (None: as it would): the
    app has no thread setting, but it shares the cores among its training slots (cutellm.lab.jobs.threads_per_slot),
    so the fewest CUTEGPT_TRAINING_SLOTS that give `threads` does it. ValueError where none does."""
    if threads is None:
        return {}
    for slots in range(1, cpus + 1):
        if threads_per_slot(slots, cpus) == threads:
            return {"CUTEGPT_TRAINING_SLOTS": str(slots)}
    raise ValueError(f"--threads {threads}: the app can train with cores / slots threads only; on {cpus} cores "
                     f"that is one of {sorted({threads_per_slot(n, cpus) for n in range(1, cpus + 1)})}")


def through_app(corpus: Path, steps: int, threads: int | None = None) -> dict:
    from playwright.sync_api import expect, sync_playwright

    from cutellm import load_checkpoint
    from tools.app_server import serve

    models = Path(tempfile.mkdtemp())
    idle = "[data-testid='stApp'][data-test-script-state='notRunning']"
    with serve(env={"CUTEGPT_MODELS_DIR": str(models), **server_env(threads, os.cpu_count() or 1)}) as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(url)
            page.wait_for_selector(idle)
            page.locator("[data-testid='stSidebarNav'] a", has_text="Train").first.click()
            page.wait_for_selector(idle)
            page.locator("[data-testid='stRadio'] label", has_text="Upload").first.click()
            page.wait_for_selector(idle)
            page.locator(".st-key-tr_upload [data-testid='stFileUploaderDropzoneInput']").set_input_files(str(corpus))
            expect(page.get_by_text(f"Using {corpus.name}").first).to_be_visible()
            page.locator("[data-testid='stRadio'] label", has_text="char").first.click()
            page.wait_for_selector(idle)
            page.locator("[data-testid='stRadio'] label", has_text="Steps").first.click()
            page.wait_for_selector(idle)
            for label, value in {**SETTINGS, "Steps": steps}.items():
                box = page.locator("[data-testid='stNumberInput']", has_text=label).first.locator("input")
                box.fill(str(value))
                box.press("Enter")
                page.wait_for_selector(idle)
            page.locator("[data-testid='stButton'] button", has_text="Train").first.click()
            page.wait_for_function("() => { const v = document.querySelector(\".live-stat[data-label='Step'] "
                                   ".value\"); return v !== null && v.textContent !== '0'; }")
            ours = descendants(os.getpid())
            server = next(p for p in ours if "streamlit" in Path(f"/proc/{p}/cmdline").read_text(errors="replace"))
            watch = CpuWatch(server, [p for p, name in ours.items() if "chrom" in name])
            first = last = watch.sample()
            step = page.locator(".live-stat[data-label='Step'] .value").first
            # Wait the way a person does: look every few seconds. Playwright's expect() would search the page's text
            # every second, and that work in the browser (~2% of a core) is not the app's.
            finished, deadline = page.get_by_text(f"Finished {steps:,} steps"), time.monotonic() + 3600
            while not finished.count():
                if page.get_by_text("Training failed").count() or time.monotonic() > deadline:
                    raise RuntimeError("the app's training did not finish")
                time.sleep(5)
                # The window ends well before the last step, so that the training threads are surely alive at both
                # of its ends (the page shows the step of up to 2 s ago).
                if int(step.inner_text().replace(",", "") or 0) < 0.9 * steps:
                    last = watch.sample()
            cpu = CpuWatch.between(first, last) if last is not first else None   # a run too short to watch
            page.locator("[data-testid='stPopover'] button", has_text="Save").first.click()
            name = page.locator(".st-key-tr_save_name input")  # not the sidebar's "New name"
            name.fill("app-overhead")
            name.press("Enter")
            page.wait_for_selector(idle)
            page.locator("[data-testid='stButton'] button", has_text="Save").last.click()
            expect(page.get_by_text("Saved as app-overhead.pth").first).to_be_visible()
            browser.close()
    _, _, meta = load_checkpoint(models / "app-overhead.pth", with_meta=True)
    return {"median_tokens_per_s": meta["tokens_per_s"], "wall_s": meta["wall_time_s"],
            "steps_s": meta["steps_time_s"], "eval_s": meta["eval_time_s"], "final_eval_s": meta["final_eval_time_s"],
            "step_times_s": meta["step_times_s"], "eval_times_s": meta["eval_times_s"],
            "steps": len(meta["loss_curve"]), "cpu": cpu}


def pair_ratios(runs: list[tuple[dict, dict]]) -> list[float]:
    """Each pair's app wall time over its direct one, minus 1, as measured: a host's slow spells (see
    `at_the_same_level`) can land on either run of a pair."""
    return [app["wall_s"] / one["wall_s"] - 1 for one, app in runs]


def split_of_the_gap(runs: list[tuple[dict, dict]]) -> dict[str, float]:
    """Where the app's extra wall time went, as the median over the pairs of each part's difference (app - direct)
    over the direct run's wall time: the steps, the evaluations, and the rest (the job's live samples and messages:
    the direct run has none). The runs as measured, or as `at_the_same_level` prices them."""
    def rest(run: dict) -> float:
        return run["wall_s"] - run["steps_s"] - run["eval_s"]

    parts = {"steps": lambda r: r["steps_s"], "evaluations": lambda r: r["eval_s"], "rest": rest}
    return {name: statistics.median((part(app) - part(one)) / one["wall_s"] for one, app in runs)
            for name, part in parts.items()}


def at_the_same_level(runs: list[tuple[dict, dict]]) -> dict:
    """The pairs again with the host's slow spells taken out (bench/host_levels.py): the levels are found in the
    direct runs' step times, and every step and evaluation of both runs of a pair that fell in a slow spell is priced
    at the fast level. What is left between the two runs is the app's own cost, whichever spells each run met."""
    levels = host_levels([one for one, _ in runs])
    priced = [(at_fast_level(one, levels), at_fast_level(app, levels)) for one, app in runs]
    pairs = pair_ratios(priced)
    return {"levels": asdict(levels) if levels else None, "pairs": pairs, "pair_median": statistics.median(pairs),
            "gap_by_part": split_of_the_gap(priced),
            "slow_share": [[one["slow_share"], app["slow_share"]] for one, app in priced]}


def main() -> None:
    from cutellm.lab.bench import DEFAULT_CORPUS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two runs N times; medians are compared")
    parser.add_argument("--threads", type=int, help="train with this many CPU threads in both runs (default: as "
                        "the app trains one run, cores / training slots); fewer than the cores leave the page a core")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "app_overhead.json")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    threads = args.threads or threads_per_slot(training_slots(), cpus)   # the direct run too, not torch's default
    try:
        server_env(threads, cpus)
    except ValueError as err:
        parser.error(str(err))
    load = os.getloadavg()
    runs = [(direct(args.corpus, args.steps, threads), through_app(args.corpus, args.steps, threads))
            for _ in range(args.repeat)]
    for a, b in runs:
        print(f"direct train():        {a['median_tokens_per_s']:>8,.0f} tokens/s  ({a['wall_s']:.1f} s wall)")
        print(f"app (job + live page): {b['median_tokens_per_s']:>8,.0f} tokens/s  ({b['wall_s']:.1f} s wall)")
    a = {k: statistics.median(r[0][k] for r in runs) for k in ("median_tokens_per_s", "wall_s")}
    b = {k: statistics.median(r[1][k] for r in runs) for k in ("median_tokens_per_s", "wall_s")}
    per_step = a["median_tokens_per_s"] / b["median_tokens_per_s"] - 1
    wall = b["wall_s"] / a["wall_s"] - 1
    pairs = pair_ratios(runs)
    print(f"slower in the app{' (medians of %d)' % len(runs) if len(runs) > 1 else ''}: {100 * per_step:+.1f}% per "
          f"step (median), {100 * wall:+.1f}% wall time (load average before: {load[0]:.2f})")
    print(f"wall time, app / direct in each pair: {', '.join(f'{100 * r:+.1f}%' for r in pairs)}; median "
          f"{100 * statistics.median(pairs):+.1f}%")
    split = split_of_the_gap(runs)
    print("the gap, by part (median over the pairs, share of the direct wall time): "
          + ", ".join(f"{name} {100 * share:+.1f}%" for name, share in split.items()))
    same = at_the_same_level(runs)
    if same["levels"]:
        lv = same["levels"]
        print(f"the host had slow spells: steps {lv['step_factor']:.2f}x and evaluations {lv['eval_factor']:.2f}x "
              f"slower (a step over {1000 * lv['split']:.1f} ms); share of slow steps, direct / app: "
              + ", ".join(f"{100 * a:.0f}/{100 * b:.0f}%" for a, b in same["slow_share"]))
        print(f"wall time with the slow spells priced at the fast level, app / direct in each pair: "
              f"{', '.join(f'{100 * r:+.1f}%' for r in same['pairs'])}; median {100 * same['pair_median']:+.1f}% "
              f"(steps {100 * same['gap_by_part']['steps']:+.1f}%, evaluations "
              f"{100 * same['gap_by_part']['evaluations']:+.1f}%, rest {100 * same['gap_by_part']['rest']:+.1f}%)")
    else:
        print("the host kept one speed level: the pairs above need no correction")
    watched = [app["cpu"] for _, app in runs if app["cpu"]]
    cpu = {k: statistics.median(c[k] for c in watched) for k in watched[0]} if watched else None
    if cpu:
        print(f"the page's CPU while the app trained (medians): browser {cpu['browser_s_per_20s']:.2f} s per 20 s "
              f"({100 * cpu['browser_share']:.1f}% of {cpu['cpus']:.0f} CPUs), server besides training "
              f"{cpu['server_other_s_per_20s']:.2f} s per 20 s ({100 * cpu['server_other_share']:.1f}%): "
              f"{100 * cpu['page_share']:.1f}% of the machine")
    report = {"steps": args.steps, "threads": runs[0][0]["threads"], "load_average_before": load[0],
              "runs": [{"direct": one, "app": other} for one, other in runs],
              "slower_per_step": per_step, "slower_wall": wall, "slower_wall_pairs": pairs,
              "slower_wall_pair_median": statistics.median(pairs), "gap_by_part": split, "at_the_same_level": same,
              "page_cpu": cpu}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Does the app keep serving while people use it at once? Six browser sessions generate and fill blanks in a loop
while a seventh trains; how fast are the answers, do any fail, and how much does the load slow training?

    python bench/load.py [--duration 120] [--steps 500] [--out bench/load.json]

Starts the app on a free 127.0.0.1 port (tools/app_server.py; nothing leaves the machine) and drives it with one
headless Chromium holding 7 browser contexts, each its own Streamlit session:

1. Session 7 trains alone: the Train page's default preset (the CLI's default model) on the bundled corpus for
   `--steps` steps, then saves the model; its metadata gives the run's median tokens/s (first 10 steps left out).
2. Sessions 1-6 start looping: open Generate, press Generate (sampled, seed 1, prompts alternating so each answer
   differs from the one shown before), wait for the new text; then open Fill the blanks and fill a phrase with ___
   (phrases alternating too). Each request is timed from the click to the whole answer shown (the script done),
   and to its first text (Generate streams its tokens, paced: ~1.5 s for 30). An exception on the page, a timeout
   or a missing result is an error (counted by kind, the loop goes on).
3. Once each of them has been answered once, session 7 trains the same run again, under load. The six keep going
   until `--duration` seconds of load have passed and the second run has finished.

Prints a table (requests served and errors per kind, p50/p95 latency, tokens/s alone vs under load, the slowdown,
cores and load average) and writes it as JSON to `--out`. Exits 1 if any request failed. `--timeout` bounds the
whole run. Needs Chromium and playwright (requirements-dev.txt).

**A class** (`--class`): 12 sessions (`--sessions`) for `--duration` seconds (default 300), as a class uses one
server with its training slots (CUTEGPT_TRAINING_SLOTS, `--slots`; by default the server's own: 1 on up to 3 cores):

    python bench/load.py --class [--duration 300] [--steps 150] [--trainers 4] [--out bench/load_class.json]

1. 4 of them (`--trainers`) open the Train page, choose the "tiny & fast" preset (`--preset`) with `--steps` steps
   and press Train at about the same time: one run per slot trains, the others wait in the queue. For each run:
   the click until the page answers (its queued box or its live view: the "train" request), the queue wait (the
   click until its live view appears, by itself once a slot frees up; a run started at once counts its start-up),
   and its run time (the live view until the finished run's results). When a run ends its learner presses Train
   again, so the queue stays full; when the time is up a queued run leaves the queue and a training one is stopped.
2. The other 8 loop over Generate and Fill the blanks (timed as above) and Explore: the click on the page's link
   until its Architecture tab's chart is drawn (first: until the page is rendered), no exception on the page.
3. Every 0.5 s the server's memory is read from /proc: the Streamlit process's resident memory (VmRSS), and the
   same summed over it and all its descendants (the training workers and their fork server; shared pages are
   counted once per process there, so the PSS sum is given too).

Prints a table (each action's requests, errors, p50/p95; queue waits p50/max, runs finished; peak memory of the
server alone and with its workers) and writes it as JSON to `--out`. Exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the figures (summarize, format_table) need no browser; benchmark() then fails to import
    PlaywrightError = PlaywrightTimeout = None

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
RUNNING = "[data-testid='stApp'][data-test-script-state='running']"
EXCEPTION = "[data-testid='stException']"
# Two of each, alternated: the page keeps the last result on screen, so a new result is recognised by its text
# changing; the same prompt twice in a row would give the same text (fixed seed). The two must differ outside the
# blanks too ("the ___ sat on the mat" and "the cat sat on the ___" both become "the cat sat on the mat").
PROMPTS = ["once upon a time", "the cat sat on the mat and"]
PHRASES = ["the cat sat on the ___", "the cow eats ___"]
REQUEST_TIMEOUT_S = 60
LOADERS = 6
# The class: sessions in all, how many of them train, and what they train: the tiny preset, at half its length so
# that the queue turns over in 5 minutes (on a busy 2-core machine 60 steps took 45 s under this load, ~6 s alone),
# while with 1 slot 3 runs wait nearly all the time.
CLASS_SESSIONS, CLASS_TRAINERS, CLASS_PRESET, CLASS_STEPS, CLASS_DURATION_S = 12, 4, "tiny & fast", 150, 300
QUEUED_BOX = "[data-testid='stMainBlockContainer'] [data-testid='stAlert']:has-text('waits for a training slot')"
MEMORY_EVERY_S = 0.5
RUN_TIMEOUT_S = 1800   # one training run, queue wait included


# ---------------------------------------------------------------------------------------------------------------
# The figures (pure: tests/test_bench_load.py checks them without a browser)
# ---------------------------------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(records: list[dict], alone: dict | None, busy: dict | None) -> dict:
    """Records ({"kind", "first_s", "latency_s", "error"}: the two times, or None and what went wrong) and the two
    training runs ({"tokens_per_s", "wall_s", "steps"}) -> the figures the table and the JSON show."""
    requests = summarize_requests(records)
    training = {"alone": alone, "under_load": busy, "slowdown_pct": None, "wall_slowdown_pct": None}
    if alone and busy:
        # Slowdown: how much lower the median per-step throughput is under load, and how much longer the run took.
        training["slowdown_pct"] = round(100 * (1 - busy["tokens_per_s"] / alone["tokens_per_s"]), 1)
        training["wall_slowdown_pct"] = round(100 * (busy["wall_s"] / alone["wall_s"] - 1), 1)
    return {"requests": requests, "errors": sum(k["errors"] for k in requests.values()), "training": training}


def summarize_requests(records: list[dict]) -> dict:
    """Per kind of request, in the order first asked for: served, errors (by type), p50/p95/max of `latency_s` and
    p50/p95 of `first_s` (where a kind has one)."""
    requests = {}
    for kind in dict.fromkeys(r["kind"] for r in records):
        mine = [r for r in records if r["kind"] == kind]
        ok = [r["latency_s"] for r in mine if r["error"] is None]
        first = [r["first_s"] for r in mine if r["error"] is None and r.get("first_s") is not None]
        errors = count_errors(mine)
        requests[kind] = {"served": len(ok), "errors": sum(errors.values()), "errors_by_type": errors,
                          "p50_s": _round(percentile(ok, 50)), "p95_s": _round(percentile(ok, 95)),
                          "max_s": _round(max(ok, default=None)),
                          "first_p50_s": _round(percentile(first, 50)), "first_p95_s": _round(percentile(first, 95))}
    return requests


def count_errors(records: list[dict]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for r in records:
        if r["error"] is not None:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    return errors


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def summarize_runs(runs: list[dict]) -> dict:
    """The class's training runs ({"queued", "place", "queue_wait_s", "run_s", "waited_s", "status", "error"}; status
    finished, stopped (at the end), left (the queue, at the end) or error) -> queue waits and runs."""
    started = [r["queue_wait_s"] for r in runs if r["queue_wait_s"] is not None]
    waited = [r["queue_wait_s"] for r in runs if r["queued"] and r["queue_wait_s"] is not None]
    finished = [r["run_s"] for r in runs if r["status"] == "finished"]
    left = [r["waited_s"] for r in runs if r["status"] == "left"]
    errors = count_errors(runs)
    return {"runs_started": len(started), "runs_finished": len(finished),
            "runs_queued": sum(1 for r in runs if r["queued"]),
            "place_max": max((r["place"] for r in runs if r["place"] is not None), default=None),
            # The click until the run's live view: a queued run's wait for a slot (a run started at once: its start).
            "queue_wait_p50_s": _round(percentile(started, 50)), "queue_wait_p95_s": _round(percentile(started, 95)),
            "queue_wait_max_s": _round(max(started, default=None)),
            "queued_wait_p50_s": _round(percentile(waited, 50)), "queued_wait_max_s": _round(max(waited, default=None)),
            "run_p50_s": _round(percentile(finished, 50)), "run_max_s": _round(max(finished, default=None)),
            "stopped_at_end": sum(1 for r in runs if r["status"] == "stopped"),
            "left_queue_at_end": len(left), "left_after_max_s": _round(max(left, default=None)),
            "errors": sum(errors.values()), "errors_by_type": errors}


def memory_peaks(samples: list[dict]) -> dict:
    """Samples of the server's memory ({"server_kb", "total_kb", "pss_kb", "processes"}: the Streamlit process's
    VmRSS, the VmRSS summed over it and its descendants, their PSS summed, how many processes) -> the peaks in MiB."""
    def peak(key: str) -> float | None:
        values = [s[key] for s in samples if s.get(key) is not None]
        return round(max(values) / 1024, 1) if values else None

    return {"samples": len(samples), "server_start_mb": round(samples[0]["server_kb"] / 1024, 1) if samples else None,
            "server_peak_mb": peak("server_kb"), "total_peak_mb": peak("total_kb"), "total_pss_peak_mb": peak("pss_kb"),
            "processes_max": max((s["processes"] for s in samples), default=None)}


def summarize_class(records: list[dict], runs: list[dict], memory: list[dict]) -> dict:
    """The class scenario's figures: each action's requests (train, generate, fill, explore), the training runs and
    their queue waits, the server's peak memory; errors counts failed requests and failed runs."""
    requests, training = summarize_requests(records), summarize_runs(runs)
    order = ("train", "generate", "fill", "explore")   # then any other kind
    requests = dict(sorted(requests.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    return {"requests": requests, "training": training, "memory": memory_peaks(memory),
            "errors": sum(k["errors"] for k in requests.values()) + training["errors"]}


def sec(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} s"


def request_lines(requests: dict, first_column: str) -> list[str]:
    """The table's rows of requests: served, errors, p50/p95/max and the first text's p50/p95, per kind."""
    w = max(10, len(first_column) + 2)
    lines = [(f"{first_column:<{w}}{'served':>8}{'errors':>8}{'p50':>10}{'p95':>10}{'max':>10}{'first p50':>11}"
              f"{'first p95':>11}")]
    for kind, k in requests.items():
        lines.append(f"{kind:<{w}}{k['served']:>8}{k['errors']:>8}{sec(k['p50_s']):>10}{sec(k['p95_s']):>10}"
                     f"{sec(k['max_s']):>10}{sec(k['first_p50_s']):>11}{sec(k['first_p95_s']):>11}"
                     + (f"   {k['errors_by_type']}" if k["errors"] else ""))
    return lines


def format_class_table(r: dict) -> str:
    def mb(x):
        return "–" if x is None else f"{x:,.0f} MiB"

    # p50/p95/max: the click until the whole answer (train: the queued box or the live view; explore: the
    # Architecture chart drawn); first: until the first text (generate streams) or the page rendered (explore).
    lines = request_lines(r["requests"], "action")
    t = r["training"]
    lines.append(f"training runs: {t['runs_started']} started ({t['runs_queued']} queued first, at most number "
                 f"{t['place_max'] or '–'}), {t['runs_finished']} finished, {t['stopped_at_end']} stopped and "
                 f"{t['left_queue_at_end']} left the queue at the end"
                 + (f", {t['errors']} failed {t['errors_by_type']}" if t["errors"] else ""))
    lines.append(f"queue wait (click -> live view): p50 {sec(t['queue_wait_p50_s'])}, p95 {sec(t['queue_wait_p95_s'])},"
                 f" max {sec(t['queue_wait_max_s'])}; of the runs that queued: p50 {sec(t['queued_wait_p50_s'])}, "
                 f"max {sec(t['queued_wait_max_s'])}")
    lines.append(f"still queued when the time was up, after up to {sec(t['left_after_max_s'])}")
    lines.append(f"run time (live view -> results): p50 {sec(t['run_p50_s'])}, max {sec(t['run_max_s'])}")
    m = r["memory"]
    lines.append(f"server memory: {mb(m['server_start_mb'])} at the start, peak {mb(m['server_peak_mb'])} alone, "
                 f"{mb(m['total_peak_mb'])} with its workers (RSS summed; PSS {mb(m['total_pss_peak_mb'])}), "
                 f"up to {m['processes_max'] or '–'} processes, {m['samples']} samples")
    c = r.get("machine")
    if c:
        lines.append(f"machine: {c['cores']} cores, load average {c['load_before'][0]:.2f} before, "
                     f"{c['load_after'][0]:.2f} after; {r['sessions']['total']} sessions ({r['sessions']['training']} "
                     f"training, {r.get('slots')} slot(s), {r.get('preset')} {r.get('steps')} steps); load phase "
                     f"{r['load_s']:.0f} s; total {r['total_s']:.0f} s")
    lines.append(f"errors: {r['errors']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# The server's memory, from /proc (Linux; no dependency)
# ---------------------------------------------------------------------------------------------------------------
def _proc_field(path: str, name: str) -> int | None:
    """The kB value of the line `name:` in a /proc file (VmRSS in status, Pss in smaps_rollup); None if gone."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_kb(pid: int) -> int | None:
    return _proc_field(f"/proc/{pid}/status", "VmRSS")


def pss_kb(pid: int) -> int | None:
    return _proc_field(f"/proc/{pid}/smaps_rollup", "Pss")


def children(pid: int) -> list[int]:
    """The direct children of `pid`: /proc/<pid>/task/*/children, or every process's parent where the kernel
    lacks that file."""
    tasks = Path(f"/proc/{pid}/task")
    files = list(tasks.glob("*/children")) if tasks.is_dir() else []
    if files:
        found = []
        for f in files:
            try:
                found += [int(x) for x in f.read_text().split()]
            except OSError:
                pass
        return found
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def descendants(pid: int) -> list[int]:
    seen, todo = [], children(pid)
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.append(p)
            todo += children(p)
    return seen


def memory_sample(pid: int) -> dict:
    """The server's memory now: its own VmRSS, VmRSS and PSS summed over it and its descendants (kB)."""
    procs = [pid, *descendants(pid)]
    rss = [rss_kb(p) for p in procs]
    pss = [pss_kb(p) for p in procs]
    return {"server_kb": rss[0], "total_kb": sum(x for x in rss if x),
            "pss_kb": sum(x for x in pss if x) if any(pss) else None, "processes": sum(1 for x in rss if x)}


class MemorySampler:
    """Samples `memory_sample(pid)` every `every` seconds in a thread, from `start()` to `stop()`."""

    def __init__(self, pid: int, every: float = MEMORY_EVERY_S):
        self.pid, self.every, self.samples = pid, every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            sample = memory_sample(self.pid)
            if sample["server_kb"] is not None:
                self.samples.append({"t": time.monotonic(), **sample})
            self._stop.wait(self.every)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> list[dict]:
        self._stop.set()
        self._thread.join()
        return self.samples


def format_table(r: dict) -> str:
    # p50/p95/max: click -> the whole answer shown; first: click -> its first text (Generate streams).
    lines = request_lines(r["requests"], "requests")
    t = r["training"]
    for label, run in (("training alone", t["alone"]), ("under load", t["under_load"])):
        if run:
            lines.append(f"{label:<16}{run['tokens_per_s']:>9,.0f} tokens/s (median)  "
                         f"{run['wall_s']:>6.1f} s wall  {run['steps']} steps")
    if t["slowdown_pct"] is not None:
        lines.append(f"slowdown under load: {t['slowdown_pct']:+.1f}% tokens/s (median), "
                     f"{t['wall_slowdown_pct']:+.1f}% wall time")
    m = r.get("machine")
    if m:
        lines.append(f"machine: {m['cores']} cores, load average {m['load_before'][0]:.2f} before, "
                     f"{m['load_after'][0]:.2f} after; load phase {r['load_s']:.0f} s; total {r['total_s']:.0f} s")
    lines.append(f"errors: {r['errors']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Driving the app
# ---------------------------------------------------------------------------------------------------------------
# The async API, not the sync one from threads: one sync_playwright() per thread would need one browser per thread
# (Playwright objects belong to the thread that made them), 7 Chromiums on a 2-core machine. With asyncio one
# browser holds the 7 contexts and one event loop waits on all of them; the driver itself does almost no work.
async def wait_rerun(page) -> None:
    """After a widget change: wait for its rerun to start (it may be over before we look), then to end."""
    with contextlib.suppress(PlaywrightTimeout):
        await page.wait_for_selector(RUNNING, timeout=2_000)
    await page.wait_for_selector(IDLE)


async def open_page(page, title: str) -> None:
    await page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    await page.wait_for_selector(f"h1:has-text('{title}')")
    await page.wait_for_selector(IDLE)


def button(page, label: str):
    return page.locator("[data-testid='stButton'] button", has_text=label).first


async def new_session(browser, url: str):
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(REQUEST_TIMEOUT_S * 1000)
    await page.goto(url)
    await page.wait_for_selector(IDLE)
    return page


async def timed_click(page, label: str) -> dict:
    """Press the button; wait for a result text different from the one on screen (or an exception), then for the
    script to finish. Generate streams its text token by token (paced, ~1.5 s for 30 tokens), so the first new text
    and the whole answer are timed apart. Returns {"first_s", "latency_s", "error"}: seconds from the click to the
    first new text and to the whole answer (the app idle again), or the error (then both None)."""
    old = await page.locator(".cute-text").first.inner_text() if await page.locator(".cute-text").count() else ""
    start = time.perf_counter()
    await button(page, label).click()
    try:
        # Polled every 50 ms: Playwright's default (every animation frame) in 6 pages would be load of its own.
        await page.wait_for_function(
            """old => document.querySelector("[data-testid='stException']") ||
                     [...document.querySelectorAll('.cute-text')].some(e => e.querySelector('.new') &&
                                                                            e.innerText !== old)""",
            arg=old, polling=50, timeout=REQUEST_TIMEOUT_S * 1000)
        first = time.perf_counter() - start
        # The script was running when the new text showed (it produced it), so idle now means it has finished.
        await page.wait_for_function(
            """() => document.querySelector("[data-testid='stApp']").getAttribute('data-test-script-state')
                     === 'notRunning'""", polling=50, timeout=REQUEST_TIMEOUT_S * 1000)
        latency = time.perf_counter() - start
    except PlaywrightTimeout:
        return {"first_s": None, "latency_s": None, "error": "timeout"}
    if await page.locator(EXCEPTION).count():
        return {"first_s": None, "latency_s": None, "error": "exception"}
    if not await page.locator(".cute-text .new").count():
        return {"first_s": None, "latency_s": None, "error": "missing result"}
    return {"first_s": first, "latency_s": latency, "error": None}


async def generate_once(page, i: int) -> dict:
    await open_page(page, "Generate")
    box = page.locator("[data-testid='stTextArea'] textarea").first
    await box.fill(PROMPTS[i % len(PROMPTS)])
    await box.press("Control+Enter")
    await wait_rerun(page)
    return await timed_click(page, "Generate")


async def fill_once(page, i: int) -> dict:
    await open_page(page, "Fill the blanks")
    box = page.locator("[data-testid='stTextInput']", has_text="Phrase").first.locator("input")
    await box.fill(PHRASES[i % len(PHRASES)])
    await box.press("Enter")
    await wait_rerun(page)
    return await timed_click(page, "Fill the blanks")


async def load_loop(page, url: str, stop: asyncio.Event, records: list[dict], served: list[int], n: int) -> None:
    """One learner: Generate, then Fill the blanks, until told to stop. An error is recorded and the session
    starts over (a fresh page), as a person would reload."""
    i = 0
    while not stop.is_set():
        for kind, once in (("generate", generate_once), ("fill", fill_once)):
            try:
                record = await once(page, i)
            except PlaywrightTimeout:  # a step before the click timed out (navigation, typing)
                record = {"first_s": None, "latency_s": None, "error": "timeout"}
            except PlaywrightError as err:  # e.g. the page crashed
                record = {"first_s": None, "latency_s": None, "error": f"browser: {err.message.splitlines()[0]}"}
            records.append({"session": n, "kind": kind, **record})
            served[n] += 1
            if record["error"]:
                with contextlib.suppress(PlaywrightError):  # if this fails too, the next request records it
                    await page.goto(url)
                    await page.wait_for_selector(IDLE)
        i += 1


async def train_once(page, steps: int, run_name: str, save_as: str, models: Path) -> dict:
    """On the Train page: the default preset for `steps` steps, Train, wait, Save; the run's figures from the file."""
    from cutellm import load_checkpoint

    await open_page(page, "Train")
    await page.locator("[data-testid='stRadio'] label", has_text="Steps").first.click()
    await wait_rerun(page)
    box = page.locator("[data-testid='stNumberInput']", has_text="Steps").first.locator("input")
    await box.fill(str(steps))
    await box.press("Enter")
    await wait_rerun(page)
    await button(page, "Train").click()
    await page.wait_for_selector(f"h3:has-text('{run_name}')")  # the new run's panel, not the last run's results
    # Look every 2 s, as a person would: a tighter wait is browser work counted against training.
    finished, deadline = page.get_by_text(f"Finished {steps:,} steps"), time.monotonic() + 1800
    while not await finished.count():
        if await page.get_by_text("Training failed").count() or await page.locator(EXCEPTION).count():
            raise RuntimeError(f"{run_name}: training failed in the app")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{run_name}: training did not finish in 30 minutes")
        await asyncio.sleep(2)
    await page.wait_for_selector(IDLE)
    await page.locator("[data-testid='stPopover'] button", has_text="Save").first.click()
    name = page.locator(".st-key-tr_save_name input")  # not the sidebar's "New name"
    await name.fill(save_as)
    await name.press("Enter")
    await wait_rerun(page)
    await page.locator("[data-testid='stButton'] button", has_text="Save").last.click()
    await page.get_by_text(f"Saved as {save_as}.pth").first.wait_for()
    await page.keyboard.press("Escape")  # close the popover
    _, _, meta = load_checkpoint(models / f"{save_as}.pth", with_meta=True)
    return {"tokens_per_s": meta["tokens_per_s"], "wall_s": meta["wall_time_s"], "steps": len(meta["loss_curve"])}


async def benchmark(url: str, models: Path, duration: float, steps: int) -> tuple[list[dict], dict, dict, float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        trainer = await new_session(browser, url)
        print(f"training {steps} steps alone ...", flush=True)
        alone = await train_once(trainer, steps, "run-1", "load-alone", models)

        print(f"opening {LOADERS} sessions that generate and fill blanks ...", flush=True)
        loaders = [await new_session(browser, url) for _ in range(LOADERS)]
        stop, records, served = asyncio.Event(), [], [0] * LOADERS
        start = time.monotonic()
        tasks = [asyncio.create_task(load_loop(page, url, stop, records, served, n)) for n, page in enumerate(loaders)]
        while min(served) == 0 and time.monotonic() - start < 120:  # every learner is busy before training starts
            await asyncio.sleep(0.5)
        print(f"training {steps} steps under load ...", flush=True)
        try:
            busy = await train_once(trainer, steps, "run-2", "load-busy", models)
            await asyncio.sleep(max(0.0, duration - (time.monotonic() - start)))
        finally:
            stop.set()
            await asyncio.gather(*tasks)  # each finishes the request it is in
        load_s = time.monotonic() - start
        await browser.close()
    return records, alone, busy, load_s


async def choose(page, label: str, option: str) -> None:
    await page.locator("[data-testid='stSelectbox']", has_text=label).first.click()
    await page.get_by_role("option").filter(has_text=option).first.click()
    await wait_rerun(page)


async def set_number(page, label: str, value) -> None:
    box = page.locator("[data-testid='stNumberInput']", has_text=label).first.locator("input")
    await box.fill(str(value))
    await box.press("Enter")
    await wait_rerun(page)


def failed(err: Exception) -> str:
    if PlaywrightTimeout is not None and isinstance(err, PlaywrightTimeout):
        return "timeout"
    if PlaywrightError is not None and isinstance(err, PlaywrightError):
        return f"browser: {err.message.splitlines()[0]}"
    return str(err)


async def explore_once(page, i: int) -> dict:
    """Open Explore from the sidebar: `first_s` until the page is rendered, `latency_s` until its Architecture tab's
    chart is drawn (the tab stays chosen from the first visit on)."""
    start = time.perf_counter()
    await page.locator("[data-testid='stSidebarNav'] a", has_text="Explore").first.click()
    try:
        await page.wait_for_selector("h1:has-text('Explore')")
        await page.wait_for_function(
            """() => document.querySelector("[data-testid='stException']") ||
                     document.querySelector("[data-testid='stApp']").getAttribute('data-test-script-state')
                     === 'notRunning'""", polling=50)
        first = time.perf_counter() - start
        tab = page.get_by_role("tab", name="Architecture")
        if await tab.get_attribute("aria-selected") != "true":
            await tab.click()
            await wait_rerun(page)
        await page.wait_for_function(
            """() => document.querySelector("[data-testid='stException']") ||
                     (document.querySelector("[role='tabpanel']:not([hidden]) [data-testid='stPlotlyChart'] .main-svg")
                      && document.querySelector("[data-testid='stApp']").getAttribute('data-test-script-state')
                         === 'notRunning')""", polling=50)
        latency = time.perf_counter() - start
    except PlaywrightTimeout:
        return {"first_s": None, "latency_s": None, "error": "timeout"}
    if await page.locator(EXCEPTION).count():
        return {"first_s": None, "latency_s": None, "error": "exception"}
    return {"first_s": first, "latency_s": latency, "error": None}


async def class_loop(page, url: str, stop: asyncio.Event, records: list[dict], n: int) -> None:
    """One learner who does not train: Generate, Fill the blanks, Explore (starting at the n-th of them, so that
    the learners do not all ask for the same thing at once), until told to stop."""
    actions = [("generate", generate_once), ("fill", fill_once), ("explore", explore_once)]
    actions = actions[n % 3:] + actions[:n % 3]
    i = 0
    while not stop.is_set():
        for kind, once in actions:
            if stop.is_set():
                break
            try:
                record = await once(page, i)
            except (PlaywrightTimeout, PlaywrightError) as err:  # a step before the click (navigation, typing)
                record = {"first_s": None, "latency_s": None, "error": failed(err)}
            records.append({"session": n, "kind": kind, **record})
            if record["error"]:
                with contextlib.suppress(PlaywrightError):
                    await page.goto(url)
                    await page.wait_for_selector(IDLE)
        i += 1


async def class_train_setup(page, preset: str, steps: int) -> None:
    await open_page(page, "Train")
    await choose(page, "Preset", preset)
    if not await page.locator("[data-testid='stNumberInput']", has_text="Steps").count():
        await page.locator("[data-testid='stRadio'] label", has_text="Steps").first.click()  # a preset in epochs
        await wait_rerun(page)
    await set_number(page, "Steps", steps)


# The page's answer to Train: the new run's queued box, its live view (another view than the last run's), or an
# exception.
ANSWER = """old => document.querySelector("[data-testid='stException']") ? 'exception' :
    [...document.querySelectorAll("[data-testid='stMainBlockContainer'] [data-testid='stAlert']")]
        .some(e => e.innerText.includes('waits for a training slot')) ? 'queued' :
    (document.querySelector('#live-view') && document.querySelector('#live-view').dataset.job !== old) ? 'live' :
    null"""


async def class_train_once(page, steps: int, stop: asyncio.Event) -> tuple[dict, dict]:
    """Press Train and follow the run: queued (its place), its live view, its end. When `stop` is set a queued run
    leaves the queue and a training one is stopped. Returns (the "train" request's record, the run's record)."""
    run = {"queued": False, "place": None, "queue_wait_s": None, "run_s": None, "waited_s": None,
           "status": "error", "error": None}
    old = await page.evaluate("() => document.querySelector('#live-view')?.dataset.job || null")
    start = time.perf_counter()
    await button(page, "Train").click()
    try:
        answer = await (await page.wait_for_function(ANSWER, arg=old, polling=100,
                                                     timeout=REQUEST_TIMEOUT_S * 1000)).json_value()
    except PlaywrightTimeout:
        return {"first_s": None, "latency_s": None, "error": "timeout"}, {**run, "error": "no answer to Train"}
    shown = time.perf_counter() - start
    if answer == "exception":
        return {"first_s": None, "latency_s": None, "error": "exception"}, {**run, "error": "exception"}
    request = {"first_s": None, "latency_s": shown, "error": None}

    async def until(condition: str, every: float) -> str:
        """Look every `every` s, as a person would (a tight wait is browser work on a busy machine)."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            if await page.locator(EXCEPTION).count():
                return "exception"
            if await page.evaluate(condition):
                return "ok"
            if stop.is_set():
                return "stop"
            if time.monotonic() > deadline:
                return "timeout"
            await asyncio.sleep(every)

    if answer == "queued":
        run["queued"] = True
        text = await page.locator(QUEUED_BOX).first.inner_text()
        place = re.search(r"number (\d+)", text)
        run["place"] = int(place.group(1)) if place else None
        started = (f"() => {{ const v = document.querySelector('#live-view'); "
                   f"return !!v && v.dataset.job !== {json.dumps(old)}; }}")
        got = await until(started, 0.5)
        if got == "stop":
            waited = time.perf_counter() - start
            try:
                await button(page, "Leave the queue").click(timeout=10_000)
            except PlaywrightTimeout:   # the run started just now: it is stopped below
                if not await page.evaluate(started):
                    raise
            else:
                await page.get_by_text("left the queue; nothing was trained").first.wait_for()
                await page.wait_for_selector(IDLE)
                return request, {**run, "waited_s": waited, "status": "left"}
        elif got != "ok":
            return request, {**run, "error": f"queued: {got}"}
    live = time.perf_counter()
    run["queue_wait_s"] = live - start
    await page.wait_for_selector(IDLE)   # the last run's results are gone from the page
    got = await until(f"() => document.body.innerText.includes('Finished {steps:,} steps') || "
                      "document.body.innerText.includes('Training failed')", 2.0)
    if got == "stop":
        try:
            await button(page, "Stop").click(timeout=10_000)
        except PlaywrightTimeout:   # it finished just now
            if not await page.get_by_text(f"Finished {steps:,} steps").count():
                raise
            got = "ok"
        else:
            await page.get_by_text("the weights trained so far are kept").first.wait_for()
            await page.wait_for_selector(IDLE)
            return request, {**run, "status": "stopped"}
    if got != "ok" or await page.get_by_text("Training failed").count():
        return request, {**run, "error": "training failed" if got == "ok" else f"training: {got}"}
    run["run_s"] = time.perf_counter() - live
    await page.wait_for_selector(IDLE)
    return request, {**run, "status": "finished"}


def _failed_run(error: str) -> dict:
    return {"queued": False, "place": None, "queue_wait_s": None, "run_s": None, "waited_s": None,
            "status": "error", "error": error}


async def trainer_loop(page, url: str, stop: asyncio.Event, go: asyncio.Event, ready: list[int], records: list[dict],
                       runs: list[dict], n: int, preset: str, steps: int) -> None:
    """One learner who trains: set up the Train page, say so in `ready`, wait for `go`, then run after run until told
    to stop. A failure is recorded and the learner starts over (a fresh page), as a person would reload."""
    try:
        await class_train_setup(page, preset, steps)
        fresh = False
    except (PlaywrightTimeout, PlaywrightError) as err:
        runs.append({"session": n, **_failed_run(f"setting up: {failed(err)}")})
        fresh = True
    finally:
        ready.append(n)
    await go.wait()
    while not stop.is_set():
        if fresh:
            try:
                await page.goto(url)
                await page.wait_for_selector(IDLE)
                await class_train_setup(page, preset, steps)
                fresh = False
            except (PlaywrightTimeout, PlaywrightError) as err:
                runs.append({"session": n, **_failed_run(f"setting up: {failed(err)}")})
                continue
        try:
            request, run = await class_train_once(page, steps, stop)
        except (PlaywrightTimeout, PlaywrightError) as err:
            request, run = None, _failed_run(failed(err))
        if request is not None:
            records.append({"session": n, "kind": "train", **request})
        runs.append({"session": n, **run})
        fresh = run["status"] == "error"


async def class_benchmark(url: str, duration: float, steps: int, sessions: int, trainers: int,
                          preset: str) -> tuple[list[dict], list[dict], float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"])
        print(f"opening {sessions} sessions ...", flush=True)
        pages = [await new_session(browser, url) for _ in range(sessions)]
        stop, go, ready, records, runs = asyncio.Event(), asyncio.Event(), [], [], []
        train_tasks = [asyncio.create_task(trainer_loop(page, url, stop, go, ready, records, runs, n, preset, steps))
                       for n, page in enumerate(pages[:trainers])]
        while len(ready) < trainers:   # the trainers set up their Train page first; then everybody starts at once
            await asyncio.sleep(0.2)
        print(f"{trainers} sessions press Train ({preset}, {steps} steps), {sessions - trainers} generate, fill "
              f"blanks and explore, for {duration:.0f} s ...", flush=True)
        start = time.monotonic()
        go.set()
        tasks = [asyncio.create_task(class_loop(page, url, stop, records, n))
                 for n, page in enumerate(pages[trainers:], start=trainers)]
        try:
            await asyncio.sleep(duration)
        finally:
            stop.set()
            print("time is up: queued runs leave the queue, training ones stop ...", flush=True)
            await asyncio.gather(*tasks, *train_tasks)
        load_s = time.monotonic() - start
        await browser.close()
    return records, runs, load_s


def main() -> int:
    from tools.app_server import serve

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--class", dest="classroom", action="store_true",
                        help=f"a class: {CLASS_SESSIONS} sessions, {CLASS_TRAINERS} of them training in the queue")
    parser.add_argument("--duration", type=float, default=None,
                        help=f"seconds of load (default 120, at least the second run; --class: {CLASS_DURATION_S})")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"steps of each training run (default 500; --class: {CLASS_STEPS})")
    # Generous: on a crowded 2-core machine each 500-step run took 2.5-5 minutes instead of seconds.
    parser.add_argument("--timeout", type=float, default=None, help="hard limit in seconds (default: duration + 1200)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON written (default bench/load.json; --class: bench/load_class.json)")
    parser.add_argument("--sessions", type=int, default=CLASS_SESSIONS, help="--class: browser sessions in all")
    parser.add_argument("--trainers", type=int, default=CLASS_TRAINERS, help="--class: how many of them train")
    parser.add_argument("--preset", default=CLASS_PRESET, help="--class: the Train page's preset they train")
    parser.add_argument("--slots", type=int, default=None,
                        help="--class: CUTEGPT_TRAINING_SLOTS for the server (default: its own setting)")
    args = parser.parse_args()
    if args.classroom:
        return main_class(args)
    args.duration = 120 if args.duration is None else args.duration
    args.steps = 500 if args.steps is None else args.steps
    args.out = args.out or ROOT / "bench" / "load.json"

    t0, load_before, limit = time.monotonic(), os.getloadavg(), args.timeout or args.duration + 1200
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        with serve(env={"CUTEGPT_MODELS_DIR": str(models)}, log=Path(tmp) / "streamlit.log") as url:
            try:
                records, alone, busy, load_s = asyncio.run(asyncio.wait_for(
                    benchmark(url, models, args.duration, args.steps), limit))
            except TimeoutError:
                print(f"error: the benchmark ran past its {limit:.0f} s limit",
                      file=sys.stderr)
                return 2
    r = summarize(records, alone, busy)
    r.update(benchmark="load", date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), duration_s=args.duration,
             steps=args.steps, sessions={"load": LOADERS, "training": 1}, load_s=round(load_s, 1),
             total_s=round(time.monotonic() - t0, 1),
             machine={"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                      "load_before": [round(x, 2) for x in load_before],
                      "load_after": [round(x, 2) for x in os.getloadavg()]})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=2) + "\n")
    print(format_table(r))
    print(f"wrote {args.out}")
    return 1 if r["errors"] else 0


def server_slots(environ: dict[str, str]) -> int:
    """The training slots the server will have: CUTEGPT_TRAINING_SLOTS from `environ` or .env, as ui/state.py
    reads it."""
    from dotenv import dotenv_values

    from cutellm.lab.jobs import training_slots

    env_file = ROOT / ".env"
    return training_slots({**(dotenv_values(env_file) if env_file.is_file() else {}), **environ})


def main_class(args: argparse.Namespace) -> int:
    from tools.app_server import serve_process

    duration = CLASS_DURATION_S if args.duration is None else args.duration
    steps = CLASS_STEPS if args.steps is None else args.steps
    out = args.out or ROOT / "bench" / "load_class.json"
    if not 0 < args.trainers < args.sessions:
        print("error: --trainers must be at least 1 and fewer than --sessions", file=sys.stderr)
        return 2
    t0, load_before, limit = time.monotonic(), os.getloadavg(), args.timeout or duration + 1200
    env = {"CUTEGPT_TRAINING_SLOTS": str(args.slots)} if args.slots else {}
    slots = server_slots({**os.environ, **env})
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        with serve_process(env={"CUTEGPT_MODELS_DIR": str(models), **env}, log=Path(tmp) / "streamlit.log") as (
                url, proc):
            sampler = MemorySampler(proc.pid).start()
            try:
                records, runs, load_s = asyncio.run(asyncio.wait_for(
                    class_benchmark(url, duration, steps, args.sessions, args.trainers, args.preset), limit))
            except TimeoutError:
                print(f"error: the benchmark ran past its {limit:.0f} s limit", file=sys.stderr)
                return 2
            finally:
                memory = sampler.stop()
            log_text = (Path(tmp) / "streamlit.log").read_text()
    r = summarize_class(records, runs, memory)
    tracebacks = log_text.count("Traceback (most recent call last)")
    r.update(benchmark="load --class", date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), duration_s=duration,
             steps=steps, preset=args.preset, slots=slots,
             sessions={"total": args.sessions, "training": args.trainers, "other": args.sessions - args.trainers},
             load_s=round(load_s, 1), total_s=round(time.monotonic() - t0, 1), server_log_tracebacks=tracebacks,
             machine={"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                      "load_before": [round(x, 2) for x in load_before],
                      "load_after": [round(x, 2) for x in os.getloadavg()]},
             runs=runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=2) + "\n")
    print(format_class_table(r))
    if tracebacks:
        print(f"the server's log has {tracebacks} traceback(s)")
    print(f"wrote {out}")
    return 1 if r["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

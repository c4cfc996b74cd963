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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
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
    requests = {}
    for kind in dict.fromkeys(r["kind"] for r in records):  # in the order they were first asked for
        mine = [r for r in records if r["kind"] == kind]
        ok = [r["latency_s"] for r in mine if r["error"] is None]
        first = [r["first_s"] for r in mine if r["error"] is None]
        errors: dict[str, int] = {}
        for r in mine:
            if r["error"] is not None:
                errors[r["error"]] = errors.get(r["error"], 0) + 1
        requests[kind] = {"served": len(ok), "errors": sum(errors.values()), "errors_by_type": errors,
                          "p50_s": _round(percentile(ok, 50)), "p95_s": _round(percentile(ok, 95)),
                          "max_s": _round(max(ok, default=None)),
                          "first_p50_s": _round(percentile(first, 50)), "first_p95_s": _round(percentile(first, 95))}
    training = {"alone": alone, "under_load": busy, "slowdown_pct": None, "wall_slowdown_pct": None}
    if alone and busy:
        # Slowdown: how much lower the median per-step throughput is under load, and how much longer the run took.
        training["slowdown_pct"] = round(100 * (1 - busy["tokens_per_s"] / alone["tokens_per_s"]), 1)
        training["wall_slowdown_pct"] = round(100 * (busy["wall_s"] / alone["wall_s"] - 1), 1)
    return {"requests": requests, "errors": sum(k["errors"] for k in requests.values()), "training": training}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def format_table(r: dict) -> str:
    def sec(x):
        return "–" if x is None else f"{x:.2f} s"

    # p50/p95/max: click -> the whole answer shown; first: click -> its first text (Generate streams).
    header = f"{'requests':<14}{'served':>8}{'errors':>8}{'p50':>10}{'p95':>10}{'max':>10}{'first p50':>11}"
    lines = [header + f"{'first p95':>11}"]
    for kind, k in r["requests"].items():
        lines.append(f"{kind:<14}{k['served']:>8}{k['errors']:>8}{sec(k['p50_s']):>10}{sec(k['p95_s']):>10}"
                     f"{sec(k['max_s']):>10}{sec(k['first_p50_s']):>11}{sec(k['first_p95_s']):>11}"
                     + (f"   {k['errors_by_type']}" if k["errors"] else ""))
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


def main() -> int:
    from tools.app_server import serve

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120, help="seconds of load (at least the second run)")
    parser.add_argument("--steps", type=int, default=500, help="steps of each training run")
    # Generous: on a crowded 2-core machine each 500-step run took 2.5-5 minutes instead of seconds.
    parser.add_argument("--timeout", type=float, default=None, help="hard limit in seconds (default: duration + 1200)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "load.json")
    args = parser.parse_args()

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


if __name__ == "__main__":
    sys.exit(main())

"""How much slower is training in the app (background job + live chart redrawn in a real browser) than the same
training called directly, as the CLI does?

    python bench/app_overhead.py [--corpus ../shared/corpora/tinyshakespeare.txt] [--steps 2000]

Runs the benchmark's model and recipe (character level, 4 layers x 4 heads, width 128, context 64, batch 12, learning
rate 1e-3, dropout 0) twice on the same cleaned corpus: once through `train()` in a fresh process, once through the
app in headless Chromium (upload, settings, Train, the Train page left open so its chart keeps redrawing, Save).
Both use the app's recipe details (windows overlapping by half, a validation every 50 steps, 8 weight snapshots), so
the only difference is the job runner and the page. Prints both medians (TrainResult.median_tokens_per_s: per-step
throughput, first 10 steps left out) and the slowdown. Needs Chromium and playwright (requirements-dev.txt).
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
sys.path.insert(0, str(ROOT))

SETTINGS = {"Block size (context)": 64, "d_model (width)": 128, "Attention heads": 4, "Layers": 4, "Dropout": 0.0,
            "Batch size": 12, "Learning rate": 0.001, "Seed": 1337}

DIRECT = """
import json, sys, torch
from cutellm import ModelConfig, TrainConfig, prepare_training, train
from cutellm.data import clean_corpus
text = clean_corpus(open(sys.argv[1], encoding="utf-8").read())
steps = int(sys.argv[2])
mc = ModelConfig(vocab_size=1000, d_model=128, n_heads=4, n_layers=4, block_size=64, dropout=0.0)
tc = TrainConfig(batch_size=12, max_steps=steps, learning_rate=1e-3, seed=1337, eval_interval=max(10, steps // 40),
                 snapshots=8)
model, tok, ds = prepare_training(text, mc, tc, tokenizer_kind="char")
r = train(model, ds, tc)
print(json.dumps({"median_tokens_per_s": r.median_tokens_per_s, "wall_s": r.wall_time_s,
                  "threads": torch.get_num_threads()}))
"""


def direct(corpus: Path, steps: int) -> dict:
    out = subprocess.run([sys.executable, "-c", DIRECT, str(corpus), str(steps)], cwd=ROOT, capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def through_app(corpus: Path, steps: int) -> dict:
    from playwright.sync_api import expect, sync_playwright

    from cutellm import load_checkpoint
    from tools.app_server import serve

    models = Path(tempfile.mkdtemp())
    idle = "[data-testid='stApp'][data-test-script-state='notRunning']"
    with serve(env={"CUTEGPT_MODELS_DIR": str(models)}) as url:
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
            # Wait the way a person does: look every few seconds. Playwright's expect() would search the page's text
            # every second, and that work in the browser (~2% of a core) is not the app's.
            finished, deadline = page.get_by_text(f"Finished {steps:,} steps"), time.monotonic() + 3600
            while not finished.count():
                if page.get_by_text("Training failed").count() or time.monotonic() > deadline:
                    raise RuntimeError("the app's training did not finish")
                time.sleep(5)
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
            "steps": len(meta["loss_curve"])}


def main() -> None:
    from cutellm.bench import DEFAULT_CORPUS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two runs N times; medians are compared")
    args = parser.parse_args()
    load = os.getloadavg()
    runs = [(direct(args.corpus, args.steps), through_app(args.corpus, args.steps)) for _ in range(args.repeat)]
    for a, b in runs:
        print(f"direct train():        {a['median_tokens_per_s']:>8,.0f} tokens/s  ({a['wall_s']:.1f} s wall)")
        print(f"app (job + live page): {b['median_tokens_per_s']:>8,.0f} tokens/s  ({b['wall_s']:.1f} s wall)")
    a = {k: statistics.median(r[0][k] for r in runs) for k in ("median_tokens_per_s", "wall_s")}
    b = {k: statistics.median(r[1][k] for r in runs) for k in ("median_tokens_per_s", "wall_s")}
    per_step = a["median_tokens_per_s"] / b["median_tokens_per_s"] - 1
    wall = b["wall_s"] / a["wall_s"] - 1
    print(f"slower in the app{' (medians of %d)' % len(runs) if len(runs) > 1 else ''}: {100 * per_step:+.1f}% per "
          f"step (median), {100 * wall:+.1f}% wall time (load average before: {load[0]:.2f})")


if __name__ == "__main__":
    main()

"""Regenerate the README's screenshots: `python docs/screenshots.py` (needs Chromium and playwright).

Starts the app on a free port, walks through every page as a learner would (a short training run included) and
saves one small PNG per page in docs/images/.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.app_server import serve  # noqa: E402  (after the path is set, when run as a script)
OUT = ROOT / "docs" / "images"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
WIDTH = 1000  # pixels of the saved images


def save(page, name: str, height: int = 900, top: float = 0) -> None:
    raw = Path(tempfile.mkdtemp()) / f"{name}.png"
    page.screenshot(path=str(raw), clip={"x": 0, "y": top, "width": 1400, "height": height})
    image = Image.open(raw)
    image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
    image.convert("P", palette=Image.ADAPTIVE, colors=128).save(OUT / f"{name}.png", optimize=True)
    print(f"wrote {OUT / name}.png ({(OUT / f'{name}.png').stat().st_size // 1024} KB)")


def go(page, title: str) -> None:
    page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    page.wait_for_selector(f"h1:has-text('{title}')")
    page.wait_for_selector(IDLE)
    time.sleep(1.0)


def click(page, label: str) -> None:
    page.locator("[data-testid='stButton'] button", has_text=label).first.click()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with serve(env={"CUTEGPT_MODELS_DIR": tempfile.mkdtemp()}) as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(url)
            page.wait_for_selector(IDLE)
            time.sleep(1.0)
            save(page, "home")

            go(page, "Generate")
            click(page, "Generate")
            page.wait_for_selector(".cute-text .new")
            page.wait_for_selector(IDLE)
            save(page, "generate", 1000)

            go(page, "Fill the blanks")
            page.locator("[data-testid='stTextInput'] input").first.fill("the ___ sat on the mat")
            page.keyboard.press("Enter")
            page.wait_for_selector(IDLE)
            click(page, "Fill the blanks")
            page.wait_for_selector(".cute-text .new")
            page.wait_for_selector(IDLE)
            save(page, "fill_blanks", 850)

            go(page, "Explore")
            for tab, name in (("Architecture", "explore_architecture"), ("Word embeddings", "explore_embeddings"),
                              ("Attention", "explore_attention")):
                page.get_by_role("tab", name=tab).click()
                page.wait_for_selector(IDLE)
                time.sleep(1.5)
                page.locator("[data-testid='stTabs']").first.scroll_into_view_if_needed()
                save(page, name, 1000)
                page.evaluate("window.scrollTo(0, 0)")

            go(page, "Train")
            page.locator("[data-testid='stSelectbox']", has_text="Preset").first.click()
            page.get_by_role("option").filter(has_text="tiny & fast").first.click()
            page.wait_for_selector(IDLE)
            box = page.locator("[data-testid='stNumberInput']", has_text="Steps").first.locator("input")
            box.fill("3000")
            box.press("Enter")
            page.wait_for_selector(IDLE)
            # The preview, once the step time has been measured.
            expect(page.locator("[data-testid='stMetric']", has_text="Time (about)").locator(
                "[data-testid='stMetricValue']")).to_have_text(re.compile(r"^\d"), timeout=60_000)
            page.wait_for_selector(IDLE)
            panel = page.locator("[data-testid='stExpander']", has_text="What you are about to train").first
            panel.scroll_into_view_if_needed()
            time.sleep(0.5)
            box = panel.bounding_box()
            save(page, "train_preview", min(420, 900 - max(0, box["y"] - 20)), top=max(0, box["y"] - 20))
            page.evaluate("window.scrollTo(0, 0)")
            click(page, "Train")
            page.wait_for_selector("#live-view img.live-chart")
            expect(page.locator("#live-view .live-samples .sample").nth(5)).to_be_visible(
                timeout=120_000)
            page.locator("h3", has_text="run-1").first.scroll_into_view_if_needed()
            save(page, "train_live", 1000)
            click(page, "Pause")
            expect(page.get_by_text("paused").first).to_be_visible(timeout=15_000)
            page.wait_for_selector(IDLE)
            page.locator("#live-view .live-samples").first.evaluate("el => el.scrollIntoView({block: 'center'})")
            time.sleep(2.5)
            save(page, "train_samples", 700)
            click(page, "Resume")
            expect(page.get_by_text("Finished").first).to_be_visible(timeout=300_000)
            page.wait_for_selector(IDLE)

            go(page, "Runs")
            page.locator("[data-testid='stMultiSelect']").first.click()
            page.get_by_role("option").filter(has_text="cute_llm").first.click()
            page.keyboard.press("Escape")
            page.wait_for_selector(IDLE)
            time.sleep(1.5)
            save(page, "runs", 1000)
            browser.close()


if __name__ == "__main__":
    main()

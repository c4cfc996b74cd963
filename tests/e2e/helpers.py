"""Small waits and checks shared by the browser tests."""

from __future__ import annotations

import re
from pathlib import Path

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips (or fails under CI=true) with a clear message
    expect = None

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# The Train page's live loss chart: an SVG image in the live view as Streamlit draws it, inline SVG once the view's
# own script has swapped in a newer one (every other chart is Plotly).
LIVE_CHART = "#live-view .live-chart"


def chart_drawn(page) -> bool:
    """The live chart is drawn (an image: decoded) and has a size."""
    return page.evaluate(f"() => {{ const c = document.querySelector('{LIVE_CHART}'); "
                         "return !!c && (c.tagName !== 'IMG' || (c.complete && c.naturalWidth > 0)) "
                         "&& c.getBoundingClientRect().height > 100; }")


def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait until the script has finished running (the app is idle)."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)


def wait_rerun(page, timeout: float = 60_000) -> None:
    """After changing a widget: wait for the rerun it causes to start, then to end. Waiting for idle alone can pass
    before the rerun starts, and a second change sent meanwhile carries the widgets' old values (undoing, say, what
    a preset's callback just set)."""
    try:
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='running']", timeout=2_000)
    except Exception:  # the rerun was over before we looked
        pass
    wait_idle(page, timeout)


def open_page(page, title: str) -> None:
    """Click a page in the sidebar navigation and wait for it to render."""
    page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    page.wait_for_selector(f"h1:has-text('{title}')")
    wait_idle(page)


def assert_no_exception(page, name: str) -> None:
    shot(page, name)
    count = page.locator("[data-testid='stException']").count()
    assert count == 0, f"{name}: the page shows {count} exception(s)"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def button(page, label: str):
    """The first Streamlit button with this label (scoped to stButton: the header has a Stop of its own)."""
    return page.locator("[data-testid='stButton'] button", has_text=label).first


def metric(page, label: str) -> str:
    """The value of the metric labelled exactly `label` ("Step" is not "Tokens per step")."""
    exact = page.locator("[data-testid='stMetricLabel']", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    box = page.locator("[data-testid='stMetric']").filter(has=exact).first
    return box.locator("[data-testid='stMetricValue']").inner_text()


def choose(page, label: str, option: str) -> None:
    page.locator("[data-testid='stSelectbox']", has_text=label).first.click()
    page.get_by_role("option").filter(has_text=option).first.click()
    wait_rerun(page)


def set_number(page, label: str, value) -> None:
    box = page.locator("[data-testid='stNumberInput']", has_text=label).first.locator("input")
    box.fill(str(value))
    box.press("Enter")
    wait_rerun(page)


def pick_radio(page, option: str) -> None:
    page.locator("[data-testid='stRadio'] label", has_text=option).first.click()
    wait_rerun(page)


def live_stat(page, label: str) -> str:
    """A figure of the Train page's live panel ("Step", "Train loss", ...)."""
    return page.locator(f".live-stat[data-label='{label}'] .value").first.inner_text()


def step_count(page) -> int:
    """The live panel's step counter."""
    return int(live_stat(page, "Step").replace(",", ""))


def live_samples(page) -> list[str]:
    """The live samples listed under the chart, newest first ("step 200: ...")."""
    return [line.strip() for line in page.locator("#live-view .live-samples .sample").all_inner_texts()]


def start_tiny_run(page, steps: int) -> None:
    """On the Train page: the 'tiny & fast' preset with `steps` steps, then Train."""
    open_page(page, "Train")
    choose(page, "Preset", "tiny & fast")
    set_number(page, "Steps", steps)
    button(page, "Train").click()


def generate_text(page, prompt: str, greedy: bool = False) -> None:
    """On the Generate page: type `prompt` (greedy decoding if asked), press Generate, wait for the new text."""
    open_page(page, "Generate")
    if greedy:
        pick_radio(page, "Greedy")
    box = page.locator("[data-testid='stTextArea'] textarea").first
    box.fill(prompt)
    box.press("Control+Enter")
    wait_idle(page)
    button(page, "Generate").click()
    page.wait_for_selector(".cute-text .new")
    wait_idle(page)


def upload_corpus(page, path) -> None:
    """On the Train page: choose Upload and give it the file at `path`."""
    open_page(page, "Train")
    pick_radio(page, "Upload")
    # The corpus uploader (the sidebar has one for models).
    page.locator(".st-key-tr_upload [data-testid='stFileUploaderDropzoneInput']").set_input_files(str(path))


def set_prompt(page, text: str) -> None:
    """On the Generate page: type `text` as the prompt and wait for the rerun."""
    box = page.locator("[data-testid='stTextArea'] textarea").first
    box.fill(text)
    box.press("Control+Enter")
    wait_rerun(page)


def generated_text(page) -> str:
    """The generated part of the text shown (empty when there is none yet)."""
    new = page.locator(".cute-text .new")
    return new.first.inner_text() if new.count() else ""


def chart_text(page, index: int = 0) -> str:
    """All the text a Plotly chart draws (tick labels, bar labels, titles): it changes when the chart redraws."""
    return page.locator("[data-testid='stPlotlyChart']").nth(index).evaluate("el => el.textContent")


def lengths_while_running(page, selector: str, timeout: float = 30.0) -> list[int]:
    """The text lengths of `selector` seen while the script runs, polled until it is idle again."""
    import time
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        state, length = page.evaluate(
            """sel => [document.querySelector("[data-testid='stApp']").getAttribute('data-test-script-state'),
                       (document.querySelector(sel) || {innerText: ''}).innerText.length]""", selector)
        if state != "running":
            if seen:
                break
        else:
            seen.append(length)
        time.sleep(0.03)
    return seen


def wait_chart_redrawn(page, before: str, index: int = 0, timeout: float = 30_000) -> str:
    """Wait until chart `index` draws something other than `before` (its old `chart_text`); its new text."""
    page.wait_for_function(
        """([i, before]) => { const el = document.querySelectorAll("[data-testid='stPlotlyChart']")[i];
                              return el && el.querySelector('.barlayer') && el.textContent !== before; }""",
        arg=[index, before], timeout=timeout)
    return chart_text(page, index)

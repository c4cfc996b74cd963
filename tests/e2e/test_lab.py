"""The Train page as a lab, in a real browser: the preview, live samples, a live view that updates itself, pause,
resume and stop.

The run is long (it must still be training after the checks on a fast host) and is stopped, not waited for: how long
12,000 steps take depends on the host, and a run left training would make the next tests find the server busy. A run
trained to its end is tests/e2e/test_bpe.py's."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import pytest

from .helpers import (LIVE_CHART, assert_no_exception, button, chart_drawn, expect, live_samples, open_page, shot,
                      start_tiny_run, step_count, wait_idle)

pytestmark = pytest.mark.e2e
STEPS = 12_000


def _wait(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_train_watch_samples_pause_resume_stop(page):
    page.goto(page.app_url)
    wait_idle(page)
    open_page(page, "Train")
    expect(page.get_by_text("What you are about to train")).to_be_visible()
    # The time is measured in the background ("measuring…"), then shown.
    expect(page.locator("[data-testid='stMetric']", has_text="Time (about)").locator(
        "[data-testid='stMetricValue']")).to_have_text(re.compile(r"^\d+[hms]"), timeout=60_000)
    assert_no_exception(page, "lab-preview")

    # Long enough to still be training after the checks below on a fast host (~250 steps/s here: 3,000 steps had
    # ended before the animation check in one CI run).
    start_tiny_run(page, STEPS)
    page.wait_for_selector(LIVE_CHART)
    samples = _wait(lambda: (s := live_samples(page)) and len(s) >= 2 and s, 90, "two live samples")
    assert re.match(r"step [\d,]+: ", samples[0]), samples
    steps = [int(re.match(r"step ([\d,]+)", s).group(1).replace(",", "")) for s in samples]
    assert steps == sorted(steps, reverse=True), f"newest first: {samples}"
    assert all("the cat sat on the" in s for s in samples)
    # The view keeps itself up to date without a Streamlit rerun: over 5 s the step counter and the chart move,
    # while no script runs and the view's element stays the one Streamlit drew (a mark set on it survives).
    page.evaluate("""() => {
        document.getElementById('live-view').dataset.probe = 'kept';
        window.scriptRuns = 0;
        new MutationObserver(() => { if (document.querySelector("[data-testid='stApp']").dataset.testScriptState
            === 'running') window.scriptRuns++; }).observe(document.querySelector("[data-testid='stApp']"),
            {attributes: true, attributeFilter: ['data-test-script-state']});
    }""")
    before, chart = step_count(page), page.locator(LIVE_CHART).evaluate("c => c.outerHTML")
    time.sleep(5)
    assert step_count(page) > before, "the step counter did not move"
    assert page.locator(LIVE_CHART).evaluate("c => c.outerHTML") != chart, "the chart did not move"
    # Swapped in as inline SVG (cheaper for the browser than an image), so a validation point names its loss on hover.
    assert page.locator(LIVE_CHART).evaluate("c => c.tagName") == "svg"
    assert chart_drawn(page)
    page.locator(f"{LIVE_CHART} circle.val").last.hover()
    assert re.match(r"step [\d,]+: validation loss \d\.\d{3}$",
                    page.locator(f"{LIVE_CHART} circle.val title").last.text_content())
    assert page.evaluate("window.scriptRuns") == 0, "a Streamlit script ran while the view updated itself"
    assert page.evaluate("document.getElementById('live-view').dataset.probe") == "kept", \
        "the live view was drawn anew"
    # The server beside Streamlit serves the view's route, and knows nothing of a job no session holds.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{page.app_url}/api/live/no-such-job", timeout=10)
    assert refused.value.code == 404
    # Nothing in the panel animates (no stale fade, no progress-bar transition): watched at every frame for longer
    # than a refresh interval, no CSS animation or transition runs inside it and its elements stay fully opaque.
    seen = page.evaluate("""() => new Promise(done => {
        const seen = new Set(), end = performance.now() + 3000;
        const look = () => {
            const panel = document.querySelector('.st-key-live_panel');
            for (const a of document.getAnimations()) {
                const t = a.effect && a.effect.target;
                if (t && panel && panel.contains(t)) seen.add(a.constructor.name + ' ' + (a.transitionProperty
                    || a.animationName) + ' on ' + (t.dataset.testid || t.className));
            }
            for (const e of document.querySelectorAll('.st-key-live_panel .stElementContainer')) {
                const o = getComputedStyle(e).opacity;
                if (o !== '1') seen.add('opacity ' + o);
            }
            performance.now() < end ? requestAnimationFrame(look) : done([...seen]);
        };
        look();
    })""")
    assert step_count(page) < STEPS, "the run ended before the checks: give it more steps"
    assert page.locator(".st-key-live_panel .stElementContainer").count() >= 3   # the buttons and the view
    assert not seen, seen
    shot(page, "lab-samples")

    button(page, "Pause").click()
    expect(button(page, "Resume")).to_be_visible(timeout=15_000)
    # The step under way when Pause was pressed still ends, and the view shows it at its next refresh (every 2 s).
    time.sleep(2.5)
    held = step_count(page)
    time.sleep(4.5)   # two refreshes of the live view
    assert step_count(page) == held, "the step counter moved while paused"
    expect(page.get_by_text("paused").first).to_be_visible()
    assert_no_exception(page, "lab-paused")

    button(page, "Resume").click()
    _wait(lambda: step_count(page) > held, 30, "the step counter to move again after Resume")
    _wait(lambda: len(live_samples(page)) >= 3, 120, "a third live sample")
    button(page, "Stop").click()
    stopped = page.get_by_text(re.compile(r"Stopped after [\d,]+ of 12,000 steps"))
    expect(stopped).to_be_visible(timeout=30_000)
    wait_idle(page)
    done = int(re.search(r"after ([\d,]+) of", stopped.inner_text()).group(1).replace(",", ""))
    assert held < done < STEPS and step_count(page) == done
    assert chart_drawn(page), "the stopped run's view has no chart"
    assert len(live_samples(page)) >= 3
    assert_no_exception(page, "lab-stopped")

    # The preview is back. Its architecture picture is drawn when its expander opens (on_change="rerun"), not before:
    # a closed expander's content is still drawn, at every change of a setting.
    picture = page.locator(".st-key-tr_architecture_open")
    assert picture.locator("[data-testid='stPlotlyChart']").count() == 0
    picture.locator("summary").click()
    expect(picture.locator("[data-testid='stPlotlyChart'] .main-svg").first).to_be_visible()
    assert_no_exception(page, "lab-architecture")

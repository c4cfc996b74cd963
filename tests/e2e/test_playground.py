"""A learner's first visit, in a real browser: train live, stop, generate, fill a blank — no exception anywhere."""

from __future__ import annotations

import re
import time

import pytest

from .helpers import (LIVE_CHART, assert_no_exception, button, chart_drawn, expect, generate_text, live_stat,
                      open_page, shot, start_tiny_run, step_count, wait_idle)

pytestmark = pytest.mark.e2e


def test_home_renders(page):
    page.goto(page.app_url)
    page.wait_for_selector("h1:has-text('CuteGPT')")
    wait_idle(page)
    assert page.locator("[data-testid='stSidebarNav']").inner_text().count("\n") >= 3
    assert_no_exception(page, "home")


def test_train_live_then_stop_generate_and_fill(page):
    page.goto(page.app_url)
    wait_idle(page)
    open_page(page, "Train")
    assert_no_exception(page, "train-before")
    start_tiny_run(page, 20000)  # long enough to watch it and stop it

    # The chart and metrics redraw while training runs: see the step counter move at least twice.
    page.wait_for_selector(LIVE_CHART)
    seen = []
    deadline = time.time() + 60
    while len(set(seen)) < 3 and time.time() < deadline:
        text = live_stat(page, "Step")
        if text and text != "0":
            seen.append(text)
        time.sleep(0.7)
    assert len(set(seen)) >= 3, f"the live chart did not update while training: {seen}"
    shot(page, "train-live")
    assert chart_drawn(page)

    # Other pages work meanwhile, and coming back shows the run still going, its chart still live.
    open_page(page, "Fill the blanks")
    button(page, "Fill the blanks").click()
    page.wait_for_selector(".cute-text .new")
    assert_no_exception(page, "fill-while-training")
    open_page(page, "Train")
    before = step_count(page)
    expect(page.locator(".live-stat[data-label='Step'] .value")).not_to_have_text(f"{before:,}", timeout=15_000)

    button(page, "Stop").click()
    page.wait_for_selector("text=the weights trained so far are kept", timeout=30_000)
    wait_idle(page)
    steps_done = step_count(page)
    assert 0 < steps_done < 20000
    button(page, "Use this model").click()
    expect(button(page, "This model is active")).to_be_visible()
    expect(page.locator("[data-testid='stSidebar']")).to_contain_text("1 layer ·")  # the tiny model
    wait_idle(page)
    assert_no_exception(page, "train-stopped")

    generate_text(page, "the dog ran to the")
    generated = page.locator(".cute-text .new").inner_text()
    assert generated.strip(), "no text was generated"
    assert page.locator(".cute-text .prompt").inner_text().startswith("the dog ran to the")
    assert_no_exception(page, "generate")

    open_page(page, "Fill the blanks")
    button(page, "Fill the blanks").click()
    page.wait_for_selector(".cute-text .new")
    wait_idle(page)
    assert re.fullmatch(r"[\w']+", page.locator(".cute-text .new").first.inner_text().strip())
    assert page.locator("[data-testid='stDataFrame']").count() >= 1
    assert_no_exception(page, "fill-blanks")

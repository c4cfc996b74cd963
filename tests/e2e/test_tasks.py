"""A toy task in a real browser: train a copy model, watch its held-out accuracy, look at its attention."""

from __future__ import annotations

import re

import pytest

from .helpers import (LIVE_CHART, assert_no_exception, button, chart_drawn, expect, live_samples,
                      live_stat, open_page, pick_radio, set_number, shot, wait_idle)

pytestmark = pytest.mark.e2e


def test_train_a_copy_model_watch_its_accuracy_and_see_its_attention(page):
    page.goto(page.app_url)
    wait_idle(page)
    open_page(page, "Train")
    pick_radio(page, "Toy task")   # copy, the first task, is chosen
    # Wait for the rerun that applied the task's preset (steps, not epochs): a change sent before it arrives would
    # carry the widgets' old values and undo it.
    expect(page.get_by_text("the copy task's preset").first).to_be_visible()
    expect(page.locator("[data-testid='stNumberInput']", has_text="Steps").first).to_be_visible()
    expect(page.locator("[data-testid='stCode']").first).to_contain_text("=")
    set_number(page, "Steps", 300)
    button(page, "Train").click()
    expect(page.locator(".live-stat[data-label='Held-out accuracy']")).to_be_visible(timeout=60_000)
    shot(page, "task-running")
    expect(page.get_by_text("Finished 300 steps").first).to_be_visible(timeout=180_000)
    wait_idle(page)
    assert re.fullmatch(r"\d+%", live_stat(page, "Held-out accuracy"))
    assert page.evaluate(f"() => !!document.querySelector('{LIVE_CHART}')") and chart_drawn(page)
    samples = live_samples(page)
    assert samples[0].startswith("step 300:") and "exact" in samples[0] and "=" in samples[0]
    page.locator("#live-view").scroll_into_view_if_needed()
    assert_no_exception(page, "task-finished")

    button(page, "Use this model").click()
    # Wait for the rerun that made it active: idle alone can pass before that rerun starts, and the page switch
    # then lands first (Explore opened on the shipped model in a CI run).
    expect(button(page, "This model is active")).to_be_visible()
    wait_idle(page)
    open_page(page, "Explore")
    # The text to look at starts as one of the task's held-out problems.
    text = page.locator("[data-testid='stTextInput'] input").first.input_value()
    assert re.fullmatch(r"([a-h]+)=\1", text), text
    page.get_by_role("tab", name="Attention").click()
    wait_idle(page)
    expect(page.get_by_text("An induction head").first).to_be_visible()
    expect(page.locator("[data-testid='stPlotlyChart']").first).to_be_visible()
    assert_no_exception(page, "task-attention")

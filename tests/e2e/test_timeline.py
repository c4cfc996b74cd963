"""The training timeline in a real browser: moving the step slider moves the words on the embedding map."""

from __future__ import annotations

import pytest

from .helpers import assert_no_exception, button, expect, open_page, shot, start_tiny_run, wait_idle

pytestmark = pytest.mark.e2e


def point_positions(page) -> list[str]:
    chart = page.locator("[data-testid='stPlotlyChart']").first
    expect(chart.locator(".scatterlayer .trace .points path").first).to_be_visible()
    return chart.locator(".scatterlayer .trace .points path").evaluate_all(
        "paths => paths.slice(0, 40).map(p => p.getAttribute('transform'))")


def test_moving_the_timeline_changes_the_embedding_map(page):
    page.goto(page.app_url)
    wait_idle(page)
    start_tiny_run(page, 200)
    expect(page.get_by_text("Finished 200 steps").first).to_be_visible(timeout=120_000)
    wait_idle(page)
    button(page, "Use this model").click()
    expect(button(page, "This model is active")).to_be_visible()

    open_page(page, "Explore")
    page.get_by_role("tab", name="Word embeddings").click()
    wait_idle(page)
    timeline = page.locator("[data-testid='stSlider']", has_text="Training timeline")
    expect(timeline).to_be_visible()
    final = point_positions(page)
    shot(page, "timeline-final")

    timeline.locator("input[type='range']").first.focus()
    page.keyboard.press("Home")  # back to step 0, the untrained model
    expect(timeline).to_contain_text("untrained")
    wait_idle(page)
    page.wait_for_timeout(500)
    start = point_positions(page)
    shot(page, "timeline-start")
    assert start != final, "the embedding map did not change with the training step"
    assert_no_exception(page, "timeline")

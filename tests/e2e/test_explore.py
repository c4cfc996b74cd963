"""Explore in a real browser: every tab renders, and hovering a word on the embedding map shows its label."""

from __future__ import annotations

import pytest

from .helpers import assert_no_exception, expect, open_page, shot, wait_idle

pytestmark = pytest.mark.e2e

# Each tab and what it must show: the token chips, a Plotly figure, or the loss metrics.
TABS = {"Tokens": ".cute-chips span", "Architecture": "[data-testid='stPlotlyChart']",
        "Next-token probabilities": "[data-testid='stPlotlyChart']",
        "Prediction heatmap": "[data-testid='stPlotlyChart']", "Word embeddings": "[data-testid='stPlotlyChart']",
        "Attention": "[data-testid='stPlotlyChart']", "Logit lens": "[data-testid='stPlotlyChart']",
        "Switch parts off": "[data-testid='stMetric']"}   # the loss with and without the part


def test_every_tab_renders_without_exception(page):
    page.goto(page.app_url)
    wait_idle(page)
    open_page(page, "Explore")
    for i, (tab, shows) in enumerate(TABS.items()):
        page.get_by_role("tab", name=tab).click()
        wait_idle(page)
        expect(page.locator(shows).first).to_be_visible()
        assert_no_exception(page, f"explore-{i}-{tab.split()[0].lower()}")


def test_hovering_an_embedding_point_shows_the_word(page):
    page.goto(page.app_url)
    wait_idle(page)
    open_page(page, "Explore")
    page.get_by_role("tab", name="Word embeddings").click()
    wait_idle(page)
    chart = page.locator("[data-testid='stPlotlyChart']").first
    expect(chart.locator(".scatterlayer .trace .points path").first).to_be_visible()
    # The highlighted word ("cat", drawn as a star on top of the others) is the last trace.
    star = chart.locator(".scatterlayer .trace").last.locator(".points path").first
    star.hover(force=True)
    hover = chart.locator(".hoverlayer .hovertext")
    expect(hover.first).to_be_visible()
    text = hover.first.text_content()
    assert "cat" in text and "nearest" in text and "corpus" in text, text
    shot(page, "explore-hover")
    assert_no_exception(page, "explore-hover")

"""The Learn page in a real browser: a lesson notices its Try this, and a link opens the same lesson elsewhere."""

from __future__ import annotations

import pytest

from .helpers import assert_no_exception, expect, wait_idle, wait_rerun

pytestmark = pytest.mark.e2e


def test_a_lesson_notices_its_try_this_and_its_link_opens_it_in_a_new_browser(page, browser):
    page.goto(page.app_url)
    wait_idle(page)
    page.get_by_text("Start with lesson 1").first.click()
    page.wait_for_selector("h1:has-text('Learn')")
    wait_idle(page)
    expect(page.get_by_role("heading", name="1 · Text becomes tokens")).to_be_visible()
    box = page.locator("[data-testid='stTextInput'] input").first
    box.fill("the zebra sat on the mat")
    box.press("Enter")
    wait_rerun(page)
    expect(page.locator("[data-testid='stAlert']", has_text="“zebra” is not among")).to_be_visible()
    # The lesson's link opens the full page (Explore's Tokens tab) on the same text.
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="The full page: Explore → Tokens, with these settings").click()
    explore = opened.value
    explore.wait_for_selector("h1:has-text('Explore')")
    wait_idle(explore)
    expect(explore.locator("[data-testid='stTextInput'] input").first).to_have_value("the zebra sat on the mat")
    expect(explore.locator(".cute-chips span").first).to_be_visible()
    assert explore.locator("[data-testid='stException']").count() == 0
    explore.close()
    page.locator("[data-testid='stButton'] button", has_text="Next lesson").first.click()
    wait_rerun(page)
    expect(page.get_by_role("heading", name="2 · Words as points")).to_be_visible()
    expect(page.locator("[data-testid='stPlotlyChart']").first).to_be_visible()
    assert_no_exception(page, "learn-lesson-2")
    url = page.url
    assert "lesson=2" in url and "done=1" in url

    # The link, opened in a fresh browser context (no cookies, no session): the same lesson, lesson 1 ticked.
    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        fresh = other.new_page()
        fresh.goto(url)
        wait_idle(fresh)
        expect(fresh.get_by_role("heading", name="2 · Words as points")).to_be_visible()
        fresh.locator("[data-testid='stSelectbox']", has_text="Lesson").first.click()
        expect(fresh.get_by_role("option").filter(has_text="✓ 1 · Text becomes tokens")).to_be_visible()
        expect(fresh.get_by_role("option").filter(has_text="○ 2 · Words as points")).to_be_visible()
        assert fresh.locator("[data-testid='stException']").count() == 0
    finally:
        other.close()

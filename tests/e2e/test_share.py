"""A shared link in a real browser: the URL of a page holds its setup, and a fresh browser opening it sees the same
prompt and settings, and generates."""

from __future__ import annotations

import pytest

from .helpers import assert_no_exception, button, expect, open_page, pick_radio, wait_idle, wait_rerun

pytestmark = pytest.mark.e2e


def test_a_generate_link_opens_the_same_setup_in_a_new_browser(page, browser):
    page.goto(page.app_url)
    wait_idle(page)
    open_page(page, "Generate")
    prompt = page.locator("[data-testid='stTextArea'] textarea").first
    prompt.fill("the dog ran to the")
    prompt.press("Control+Enter")
    wait_rerun(page)
    pick_radio(page, "Greedy")
    page.wait_for_url("**mode=greedy**")
    url = page.url
    assert "prompt=the+dog+ran+to+the" in url or "prompt=the%20dog%20ran%20to%20the" in url
    button(page, "Generate").click()
    page.wait_for_selector(".cute-text .new")
    wait_idle(page)
    written = page.locator(".cute-text .new").first.inner_text()

    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        fresh = other.new_page()
        fresh.set_default_timeout(30_000)
        fresh.goto(url)
        wait_idle(fresh)
        expect(fresh.locator("[data-testid='stTextArea'] textarea").first).to_have_value("the dog ran to the")
        button(fresh, "Generate").click()
        fresh.wait_for_selector(".cute-text .new")
        wait_idle(fresh)
        # Greedy decoding from the same prompt: the same text, so the link carried the decoding setting too.
        assert fresh.locator(".cute-text .new").first.inner_text() == written
        assert_no_exception(fresh, "shared-link-generate")
    finally:
        other.close()

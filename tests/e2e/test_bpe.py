"""A BPE model in a real browser: train a tiny one, generate with it, look at its tokens."""

from __future__ import annotations

import pytest

from .helpers import (assert_no_exception, button, choose, expect, generate_text, open_page, pick_radio, set_number,
                      shot, wait_idle)

pytestmark = pytest.mark.e2e


def test_train_a_tiny_bpe_model_generate_and_see_its_tokens(page):
    page.goto(page.app_url)
    wait_idle(page)
    open_page(page, "Train")
    choose(page, "Preset", "tiny & fast")
    pick_radio(page, "BPE (subwords)")
    set_number(page, "Steps", 150)
    expect(page.locator("[data-testid='stMetric']", has_text="<unk> rate").first).to_contain_text("0.0%")
    button(page, "Train").click()
    expect(page.get_by_text("Finished 150 steps").first).to_be_visible(timeout=120_000)
    wait_idle(page)
    button(page, "Use this model").click()
    expect(page.locator("[data-testid='stSidebar']")).to_contain_text("bpe vocabulary")
    assert_no_exception(page, "bpe-trained")

    generate_text(page, "Once upon a time", greedy=True)
    assert page.locator(".cute-text .new").inner_text().strip(), "no text was generated"
    assert page.locator("[data-testid='stAlert']", has_text="<unk>").count() == 0
    assert_no_exception(page, "bpe-generate")

    open_page(page, "Explore")
    page.get_by_role("tab", name="Tokens").click()
    wait_idle(page)
    chips = page.locator(".cute-chips span")
    expect(chips.first).to_be_visible()
    assert chips.count() > 5 and "·" in page.locator(".cute-chips").inner_text()
    assert "id " in chips.first.get_attribute("title")
    expect(page.get_by_text("its first 50 merges").first).to_be_visible()
    shot(page, "bpe-tokens")
    assert_no_exception(page, "bpe-tokens")

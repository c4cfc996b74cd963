"""Chat in a real browser: two questions to cute_chat, each reply streamed into its bubble, then the same question to
the instruction-tuned model and its base side by side."""

from __future__ import annotations

import time

import pytest

from .helpers import assert_no_exception, button, expect, open_page, shot, wait_idle, wait_rerun

pytestmark = pytest.mark.e2e
MESSAGE = "[data-testid='stChatMessage']"


def send(page, text: str) -> list[int]:
    """Type a message and press Enter; the number of tinted tokens in the newest bubble, polled while it streams."""
    before = page.locator(MESSAGE).count()
    box = page.locator("[data-testid='stChatInputTextArea']")
    box.fill(text)
    box.press("Enter")
    seen, deadline = [], time.time() + 30
    while time.time() < deadline:   # count only once the new assistant bubble exists (old ones show meanwhile)
        state, tokens = page.evaluate(
            """([sel, n]) => { const m = document.querySelectorAll(sel);
                   return [document.querySelector("[data-testid='stApp']").getAttribute('data-test-script-state'),
                           m.length > n ? m[n].querySelectorAll('.cute-text .tok').length : -1]; }""",
            [MESSAGE, before + 1])
        if state != "running" and seen:
            break
        if state == "running":
            seen.append(tokens)
        time.sleep(0.02)
    wait_idle(page)
    expect(page.locator(MESSAGE)).to_have_count(before + 2)
    return seen


def test_two_turns_streamed_then_base_and_tuned_side_by_side(page):
    page.goto(page.app_url)
    wait_idle(page)
    open_page(page, "Chat")
    expect(page.get_by_text("is a text completer").first).to_be_visible()
    button(page, "Switch to cute_chat").click()
    wait_rerun(page)
    expect(page.get_by_text("was instruction-tuned").first).to_be_visible()

    for n, question in enumerate(["what colour is the snow?", "what is the home of the cow?"]):
        counts = send(page, question)
        reply = page.locator(MESSAGE).nth(2 * n + 1)
        final = reply.locator(".cute-text .tok").count()
        growing = sorted({c for c in counts if 0 < c < final})
        assert final >= 3 and growing, f"reply {n + 1} did not grow token by token: saw {sorted(set(counts))}, " \
                                       f"final {final}"
        expect(reply).to_contain_text("Stopped at")
        assert "probability" in reply.locator(".cute-text .tok").first.get_attribute("title")
    assert "snow" in page.locator(MESSAGE).nth(0).inner_text()
    assert_no_exception(page, "chat-two-turns")

    page.locator("[data-testid='stCheckbox']", has_text="Compare with the base model").click()
    wait_rerun(page)
    expect(page.get_by_text("also goes to").first).to_be_visible()
    send(page, "what colour is the grass?")
    last = page.locator(MESSAGE).last
    expect(last.locator(".cute-text")).to_have_count(2)
    expect(last).to_contain_text("cute_chat_base")
    expect(last).to_contain_text("its chat tokens are untrained")
    assert all(t.strip() for t in last.locator(".cute-text").all_inner_texts()), "both models answered"

    page.locator("[data-testid='stExpander']", has_text="What the model sees").locator("summary").click()
    expect(page.locator(".chat-chips").first).to_be_visible()
    assert page.locator(".chat-chips").count() == 2
    assert page.locator(".chat-chips .control").first.inner_text() == "<|user|>"
    assert_no_exception(page, "chat-side-by-side")
    last.scroll_into_view_if_needed()
    shot(page, "chat-side-by-side-bubble")

"""Robustness in a real browser: two sessions at once, and uploads that are not text."""

from __future__ import annotations

import pytest

from cutellm import generate, load_checkpoint

from .conftest import ROOT
from .helpers import (LIVE_CHART, assert_no_exception, button, expect, generate_text, metric, open_page, shot,
                      start_tiny_run, step_count, upload_corpus, wait_idle)

pytestmark = pytest.mark.e2e


def test_one_session_trains_while_another_generates(browser, app_server):
    a_ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    b_ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    a, b = a_ctx.new_page(), b_ctx.new_page()
    try:
        for page in (a, b):
            page.set_default_timeout(30_000)
            page.goto(app_server)
            wait_idle(page)

        # A starts a long run.
        start_tiny_run(a, 20000)
        a.wait_for_selector(LIVE_CHART)
        expect(button(a, "Stop")).to_be_visible()

        # B generates with its own (shipped) model meanwhile, and sees exactly the shipped model's output.
        generate_text(b, "the cat sat on the", greedy=True)
        model, tokenizer = load_checkpoint(ROOT / "models" / "cute_llm.pth")
        expected = generate(model, tokenizer, "the cat sat on the", 30)
        shown = (b.locator(".cute-text .prompt").inner_text() + b.locator(".cute-text .new").inner_text())
        assert " ".join(shown.split()) == expected
        assert "cute_llm (shipped)" in b.locator("[data-testid='stSidebar']").inner_text() or \
            "524,416" in b.locator("[data-testid='stSidebar']").inner_text()
        assert_no_exception(b, "two-sessions-b-generate")

        # B asks to train too: with the one slot taken, its run waits in the queue (not a crash), and B leaves it.
        open_page(b, "Train")
        expect(b.get_by_text("Every training slot of this server is in use").first).to_be_visible()
        button(b, "Train").click()
        expect(b.get_by_text("waits for a training slot").first).to_be_visible()
        assert_no_exception(b, "two-sessions-b-queued")
        button(b, "Leave the queue").click()
        expect(b.get_by_text("left the queue; nothing was trained").first).to_be_visible()

        # A is still training, then stops and keeps its weights.
        assert step_count(a) > 0
        button(a, "Stop").click()
        expect(a.get_by_text("the weights trained so far are kept").first).to_be_visible()
        assert_no_exception(a, "two-sessions-a-stopped")
    finally:
        a_ctx.close()
        b_ctx.close()


@pytest.mark.parametrize("name, content, message", [
    ("picture.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8, "binary"),
    ("latin1.txt", "caf\xe9 cr\xe8me br\xfbl\xe9e ".encode("latin-1") * 50, "UTF-8"),
    ("empty.txt", b"", "empty"),
], ids=["png renamed txt", "latin-1 text", "empty file"])
def test_uploads_that_are_not_text_get_a_clear_message(page, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    page.goto(page.app_url)
    wait_idle(page)
    upload_corpus(page, path)
    expect(page.locator("[data-testid='stAlert']", has_text=message).first).to_be_visible()
    expect(button(page, "Train")).to_be_disabled()
    shot(page, f"upload-{name}")
    assert_no_exception(page, f"upload-{name}")


def test_a_good_upload_shows_its_statistics(page, tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("# my story\n" + "the little fox ran to the river and drank the cold water. " * 60)
    page.goto(page.app_url)
    wait_idle(page)
    upload_corpus(page, path)
    expect(page.get_by_text("Using story.txt").first).to_be_visible()
    assert metric(page, "Words") == "720"  # 12 words x 60; the "#" comment line is not counted
    assert_no_exception(page, "upload-good")

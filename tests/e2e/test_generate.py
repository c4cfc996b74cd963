"""Generate in a real browser: the text streams in token by token; step by step, the bars redraw and a branch sticks."""

from __future__ import annotations

import pytest

from .helpers import (assert_no_exception, button, chart_text, expect, generated_text, lengths_while_running,
                      open_page, pick_radio, set_prompt, shot, wait_chart_redrawn, wait_idle, wait_rerun)

pytestmark = pytest.mark.e2e


def test_streaming_shows_the_text_growing_before_it_ends(page):
    page.goto(page.app_url)
    wait_idle(page)
    open_page(page, "Generate")
    set_prompt(page, "once upon a time")
    button(page, "Generate").click()
    lengths = lengths_while_running(page, ".cute-text .new")
    wait_idle(page)
    final = len(generated_text(page))
    growing = sorted({n for n in lengths if 0 < n < final})
    assert len(growing) >= 2, f"the text did not grow token by token: lengths seen {sorted(set(lengths))}, final {final}"
    expect(page.locator("[data-testid='stDataFrame']")).to_be_visible(timeout=30_000)
    assert page.locator(".cute-text .new .tok").count() == 30  # each token its own tinted span
    assert "probability" in page.locator(".cute-text .tok").first.get_attribute("title")
    assert_no_exception(page, "generate-streamed")


def test_step_three_tokens_then_branch(page):
    page.goto(page.app_url)
    wait_idle(page)
    open_page(page, "Generate")
    set_prompt(page, "the dog ran to the")
    pick_radio(page, "Step by step")
    # Plotly's script loads on first use: give a loaded machine time to draw.
    expect(page.locator("[data-testid='stPlotlyChart'] .barlayer .trace").first).to_be_visible(timeout=30_000)
    assert page.locator("[data-testid='stPlotlyChart'] .barlayer .trace").count() == 4  # one panel per stage
    shot(page, "generate-step-start")

    texts, charts = [generated_text(page)], [chart_text(page)]
    for _ in range(3):
        button(page, "Next token").click()
        wait_rerun(page)
        expect(page.locator(".cute-text .new")).not_to_have_text(texts[-1])
        texts.append(generated_text(page))
        charts.append(wait_chart_redrawn(page, charts[-1]))
    assert [len(t) for t in texts] == sorted(len(t) for t in texts) and len(set(texts)) == 4, texts
    assert len(set(charts)) == 4, "the bars did not redraw for the new text"

    # Branch on the model's third choice.
    pill = page.locator("[data-testid='stButtonGroup'] button").nth(2)
    token = pill.inner_text().rsplit(" ", 1)[0]
    pill.click()
    wait_rerun(page)
    button(page, "Take this one").click()
    wait_rerun(page)
    expect(page.locator(".cute-text .new")).not_to_have_text(texts[-1])
    branched = generated_text(page)
    assert branched.startswith(texts[-1].rstrip()) and branched.rstrip().endswith(token), (branched, token)
    wait_chart_redrawn(page, charts[-1])
    assert_no_exception(page, "generate-step-branched")
    page.locator("[data-testid='stPlotlyChart']").first.scroll_into_view_if_needed()
    shot(page, "generate-step-bars")

    # Undo takes the branch back off; back in normal mode the grown text is the prompt.
    button(page, "Undo").click()
    wait_rerun(page)
    expect(page.locator(".cute-text .new")).to_have_text(texts[-1])
    pick_radio(page, "Generate")
    prompt = page.locator("[data-testid='stTextArea'] textarea").first.input_value()
    assert prompt.startswith("the dog ran to the") and len(prompt) > len("the dog ran to the")
    assert_no_exception(page, "generate-step-back")

"""A class on one server, in a real browser: the app bound to every interface (as the README serves a class) and
reached at this machine's network address, one training slot, two learners. A trains; B's run waits in the queue,
B leaves it and joins again; when A stops, B's run starts by itself.

    streamlit run streamlit_app.py --server.address 0.0.0.0 --server.port 8501   # with CUTEGPT_TRAINING_SLOTS=1
"""

from __future__ import annotations

import re
import time

import pytest

from tools.app_server import lan_address, serve

from .conftest import ARTIFACTS, IN_CI
from .helpers import (LIVE_CHART, assert_no_exception, button, expect, open_page, start_tiny_run, step_count,
                      wait_idle)

pytestmark = pytest.mark.e2e

QUEUED = "[data-testid='stMainBlockContainer'] [data-testid='stAlert']:has-text('waits for a training slot')"


@pytest.fixture(scope="module")
def class_server(tmp_path_factory):
    """The app on 0.0.0.0 with one training slot; its URL at this machine's network address."""
    ip = lan_address()
    if ip is None:
        message = "this machine has no network address besides loopback"
        if IN_CI:
            pytest.fail(f"the classroom test must run under CI=true: {message}")
        pytest.skip(message)
    models = tmp_path_factory.mktemp("class_models")
    log = tmp_path_factory.mktemp("class_server") / "streamlit.log"
    with serve(env={"CUTEGPT_TRAINING_SLOTS": "1", "CUTEGPT_MODELS_DIR": str(models)}, log=log,
               address="0.0.0.0") as url:
        yield url.replace("127.0.0.1", ip, 1), log


def learner(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_selector("h1:has-text('CuteGPT')")
    wait_idle(page)
    return context, page


def steps_move(page, timeout: float = 90) -> list[int]:
    """The live panel's step counter, read until it has shown two different non-zero values."""
    seen, deadline = [], time.time() + timeout
    while len(set(seen)) < 2 and time.time() < deadline:
        if page.locator(".live-stat[data-label='Step'] .value").count():
            n = step_count(page)
            if n:
                seen.append(n)
        time.sleep(0.5)
    return seen


def test_two_learners_share_one_training_slot(browser, class_server):
    url, log = class_server
    assert not url.startswith("http://127."), url
    a_context, a = learner(browser, url)
    b_context, b = learner(browser, url)
    try:
        assert a.url.startswith(url), a.url   # served at the network address, not loopback

        # A trains (long enough to still be training when B comes, stopped by hand below).
        start_tiny_run(a, 20000)
        a.wait_for_selector(LIVE_CHART, timeout=60_000)
        assert len(set(steps_move(a))) >= 2, "A's run does not train"
        assert_no_exception(a, "classroom-1-a-training")

        # B presses Train: every slot is busy, so its run waits, first in the queue, with a way out.
        open_page(b, "Train")
        expect(b.get_by_text("Every training slot of this server is in use")).to_be_visible()
        start_tiny_run(b, 20000)   # long enough to be training still when B stops it, on any host
        queued = b.locator(QUEUED)
        expect(queued).to_be_visible(timeout=30_000)
        expect(queued).to_contain_text("run-1")
        expect(queued).to_contain_text("number 1 in the queue")
        expect(button(b, "Leave the queue")).to_be_visible()
        assert not b.locator("#live-view").count(), "a queued run shows a live view"
        assert_no_exception(b, "classroom-2-b-queued")

        # B leaves the queue: nothing was trained, and Train can be pressed again.
        button(b, "Leave the queue").click()
        left = b.get_by_text("run-1 left the queue; nothing was trained")
        expect(left).to_be_visible(timeout=30_000)
        wait_idle(b)
        left.scroll_into_view_if_needed()
        expect(queued).to_have_count(0)
        expect(button(b, "Train")).to_be_enabled()
        assert_no_exception(b, "classroom-3-b-left")

        # B joins again (run-2, first in the queue once more); A's run is still the one training.
        button(b, "Train").click()
        expect(queued).to_be_visible(timeout=30_000)
        expect(queued).to_contain_text("run-2")
        expect(queued).to_contain_text("number 1 in the queue")
        assert_no_exception(b, "classroom-4-b-queued-again")
        a_steps = steps_move(a, timeout=30)
        assert len(set(a_steps)) >= 2, f"A's run stopped training while B waited: {a_steps}"

        # A stops: its weights are kept, the slot frees, and B's run starts by itself (no click on B's page).
        button(a, "Stop").click()
        a.wait_for_selector("text=the weights trained so far are kept", timeout=60_000)
        wait_idle(a)
        a.get_by_text("the weights trained so far are kept").scroll_into_view_if_needed()
        assert_no_exception(a, "classroom-5-a-stopped")
        expect(queued).to_have_count(0, timeout=60_000)
        b.wait_for_selector(LIVE_CHART, timeout=60_000)
        expect(b.locator("#live-view")).to_contain_text("run-2")
        b_steps = steps_move(b)
        assert len(set(b_steps)) >= 2, f"B's run did not train once the slot was free: {b_steps}"
        assert_no_exception(b, "classroom-6-b-training")

        button(b, "Stop").click()
        b.wait_for_selector("text=the weights trained so far are kept", timeout=60_000)
        wait_idle(b)
        b.get_by_text("the weights trained so far are kept").scroll_into_view_if_needed()
        assert_no_exception(b, "classroom-7-b-stopped")
        text = log.read_text()
        assert not re.search(r"Traceback|Exception in", text), text[-3000:]
    finally:
        for name, page in (("a", a), ("b", b)):
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"classroom-final-{name}.png"), full_page=True)
        a_context.close()
        b_context.close()

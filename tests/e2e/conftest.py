"""Real-browser tests: start `streamlit run` on a free localhost port and drive Debian's Chromium with Playwright.

Without Chromium (or playwright) these tests skip on a laptop; under CI=true they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tools.app_server import serve

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(reason: str):
    if IN_CI:
        pytest.fail(f"browser tests must run under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """A running app on a free port; saved models go to a temporary folder; one training slot whatever the host
    (the two-session tests expect a second run to queue)."""
    models = tmp_path_factory.mktemp("models")
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with serve(env={"CUTEGPT_MODELS_DIR": str(models), "CUTEGPT_TRAINING_SLOTS": "1"}, log=log) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -r requirements-dev.txt)")
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                    "--disable-dev-shm-usage", "--no-first-run", "--disable-component-update",
                                    "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def page(browser, app_server, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.app_url = app_server
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", request.node.name)[:120]
    pg.screenshot(path=str(ARTIFACTS / f"{name}-final.png"), full_page=True)
    context.close()

"""Small waits and checks shared by the browser tests."""

from __future__ import annotations

from pathlib import Path

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips (or fails under CI=true) with a clear message
    expect = None

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait until the script has finished running (the app is idle)."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)


def open_page(page, title: str) -> None:
    """Click a page in the sidebar navigation and wait for it to render."""
    page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    page.wait_for_selector(f"h1:has-text('{title}')")
    wait_idle(page)


def assert_no_exception(page, name: str) -> None:
    shot(page, name)
    count = page.locator("[data-testid='stException']").count()
    assert count == 0, f"{name}: the page shows {count} exception(s)"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

"""AppTest fixtures: a fresh app per test, saved models in a temporary folder, no training job left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("CUTEGPT_MODELS_DIR", str(folder))
    return folder


@pytest.fixture
def app(models_dir):
    """The app, run once (Home page), with cleared caches."""
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=90)
    at.run()
    yield at
    job = at.session_state["train_job"] if "train_job" in at.session_state else None
    if job is not None:
        job.stop("test finished")
        job.join(60)


def open_page(at: AppTest, name: str) -> AppTest:
    at.switch_page(f"app_pages/{name}.py").run()
    return at


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return matches[0]


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def start_tiny_run(app: AppTest, steps: int = 30, **settings):
    """On the Train page, choose the 'tiny & fast' preset, then `settings` (widget key -> value) and `steps` steps,
    and press Train; returns the running job."""
    open_page(app, "train")
    app.selectbox(key="tr_preset").set_value("tiny & fast").run()
    for key, value in settings.items():
        app.session_state[key] = value
    app.run()
    app.number_input(key="tr_steps").set_value(steps).run()
    button(app, "Train").click().run()
    no_exception(app)
    job = app.session_state["train_job"]
    assert job is not None, "pressing Train started no job"
    return job


def finish_run(app: AppTest, job, timeout: float = 180):
    """Wait for the job to end, then rerun the page as its live panel would."""
    assert job.join(timeout), "the training job did not end"
    app.run()
    no_exception(app)
    return job


def train_tiny_run(app: AppTest, steps: int = 30, **settings):
    """`start_tiny_run`, then `finish_run`."""
    return finish_run(app, start_tiny_run(app, steps, **settings))


def live_view(at: AppTest) -> str:
    """The HTML of the Train page's live view, as the page drew it."""
    views = [h.proto.body for h in at.get("html") if 'id="live-view"' in h.proto.body]
    assert len(views) == 1, f"{len(views)} live views on the page"
    return views[0]

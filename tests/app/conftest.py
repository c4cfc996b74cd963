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

"""The server's one-time setup (ui/server.py), done when `streamlit run` imports streamlit_app.py as a module."""

from __future__ import annotations

import os
import runpy
import time

from tests.app.conftest import ROOT


def test_the_server_stops_streamlits_polling_of_its_config_files(tmp_path, monkeypatch):
    from streamlit import config
    from streamlit.watcher.polling_path_watcher import PollingPathWatcher

    from ui.server import stop_config_polling

    config_file, other = tmp_path / "config.toml", tmp_path / "other.toml"
    for path in (config_file, other):
        path.write_text("[server]\n")
    monkeypatch.setattr(config, "get_config_files", lambda name: [str(config_file)])
    changed = []
    watchers = [PollingPathWatcher(str(path), changed.append) for path in (config_file, other)]
    try:
        assert stop_config_polling() == 1
        later = time.time() + 60   # a newer modification time whatever the file system's resolution
        for path in (config_file, other):
            path.write_text("[server]\nheadless = true\n")
            os.utime(path, (later, later))
        deadline = time.monotonic() + 30
        while str(other) not in changed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert changed == [str(other)]   # the other file is still watched; the config file no longer
    finally:
        for watcher in watchers:
            watcher.close()


def test_streamlit_run_sets_the_server_up_when_it_imports_the_app(monkeypatch):
    calls = []
    monkeypatch.setattr("ui.server.stop_config_polling", lambda: calls.append(1) or 0)
    module = runpy.run_path(str(ROOT / "streamlit_app.py"), run_name="streamlit_app")
    assert calls == [1] and module["app"] is not None

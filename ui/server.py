"""What the app's server sets up once, when `streamlit run` imports streamlit_app.py as a module (not per session)."""

from __future__ import annotations

import gc
from pathlib import Path


def stop_config_polling() -> int:
    """Stop Streamlit's polling of its config.toml files; returns how many watchers it stopped.

    Streamlit (1.67) looks at each config.toml it reads, the user's and the project's, every 0.2 s so that an edit
    reloads the options, whatever `server.fileWatcherType` says. Nothing here edits its config while serving, and
    those looks cost the server ~2.4 ms of CPU a second, taken from the cores a training run uses (bench/README.md,
    "Speed, round sixteen"). Streamlit keeps no public handle on these watchers: they are found among the live
    objects and closed (their own `close()`)."""
    from streamlit import config
    from streamlit.watcher.polling_path_watcher import PollingPathWatcher

    files = {Path(f) for f in config.get_config_files("config.toml")}
    # type(), not isinstance(): some live objects (torch's deprecated aliases) warn when asked their __class__
    watchers = [w for w in gc.get_objects()
                if type(w) is PollingPathWatcher and Path(getattr(w, "_path", "")) in files]
    for watcher in watchers:
        watcher.close()
    return len(watchers)

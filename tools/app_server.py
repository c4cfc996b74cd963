"""Start the app on a free localhost port and wait until it is healthy (for browser tests and scripts).

    with serve(env={"CUTEGPT_MODELS_DIR": tmp}) as url:
        ...  # drive http://127.0.0.1:<port> with a browser
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent  # the repository
# The browser tests' flags (see ../shared/DESIGN.md): headless, loopback only, no file watcher, no usage stats.
FLAGS = ["--server.headless=true", "--server.address=127.0.0.1", "--server.fileWatcherType=none",
         "--browser.gatherUsageStats=false"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(env: dict[str, str] | None = None, log: Path | None = None, timeout_s: float = 60) -> Iterator[str]:
    """Run `streamlit run streamlit_app.py` until the block ends; yields its URL once /_stcore/health says ok."""
    port = free_port()
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", f"--server.port={port}",
                             *FLAGS], cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                tail = log.read_text()[-3000:] if log else "(no log)"
                raise RuntimeError(f"streamlit did not start:\n{tail}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()

"""Start the app on a free localhost port and wait until it is healthy (for browser tests and scripts).

    with serve(env={"CUTEGPT_MODELS_DIR": tmp}) as url:
        ...  # drive http://127.0.0.1:<port> with a browser

`serve(address="0.0.0.0")` binds every interface, as a class's server does (reach it at `lan_address()`);
`serve_process()` also yields the server's process (its pid, for measuring its memory).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository
# The browser tests' flags (see ../shared/DESIGN.md): headless, loopback only, no file watcher, no usage stats.
FLAGS = ["--server.headless=true", "--server.address=127.0.0.1", "--server.fileWatcherType=none",
         "--browser.gatherUsageStats=false"]


ANY_ADDRESS = ("0.0.0.0", "::", "")   # bind every interface; the server is then reached on loopback


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind(("" if address in ANY_ADDRESS else address, 0))
        return s.getsockname()[1]


def lan_address() -> str | None:
    """This machine's IPv4 address on its network (not loopback), or None when it has none: the address of the
    interface a packet to the outside would leave by (a UDP socket's connect sends nothing), else the host name's."""
    for target in ("10.255.255.255", "192.0.2.1", "8.8.8.8"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((target, 9))
                ip = s.getsockname()[0]
            except OSError:
                continue
        if ip and not ip.startswith("127.") and ip != "0.0.0.0":
            return ip
    try:
        ips = socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        ips = []
    return next((ip for ip in ips if not ip.startswith("127.")), None)


@contextmanager
def serve(env: dict[str, str] | None = None, log: Path | None = None, timeout_s: float = 60,
          address: str = "127.0.0.1", args: Sequence[str] = ()) -> Iterator[str]:
    """Run `streamlit run streamlit_app.py` until the block ends; yields its URL once /_stcore/health says ok.
    `address`: the interface it binds ("0.0.0.0": all of them; the URL is then loopback's); `args`: more
    `streamlit run` flags (a later flag wins over an earlier one)."""
    with serve_process(env, log, timeout_s, address, args) as (url, _):
        yield url


@contextmanager
def serve_process(env: dict[str, str] | None = None, log: Path | None = None, timeout_s: float = 60,
                  address: str = "127.0.0.1", args: Sequence[str] = ()) -> Iterator[tuple[str, subprocess.Popen]]:
    """`serve()`, yielding (URL, the server's process)."""
    port = free_port(address)
    flags = [f for f in FLAGS if not f.startswith("--server.address=")] + [f"--server.address={address}"]
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", f"--server.port={port}",
                             *flags, *args], cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://{'127.0.0.1' if address in ANY_ADDRESS else address}:{port}"
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
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()

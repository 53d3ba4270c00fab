#!/usr/bin/env python3
"""One command to run the service, one to test it, on a machine with only Python.

    python3 run.py          # venv + install + migrate + bootstrap, then web (HTTP + WebSocket),
                            # Celery worker and beat in the foreground; Ctrl-C stops them all
    python3 run.py test     # the test suite (extra arguments go to pytest)

Without DATABASE_URL/REDIS_URL it uses an SQLite file and an embedded Redis server.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VENV_DIR", ROOT / ".venv"))
PY = VENV / "bin" / "python"
REQS = ROOT / "requirements.txt"
STAMP = VENV / ".requirements.sha256"


def ensure_venv() -> None:
    """Create the virtualenv and install requirements.txt when it changed."""
    if not PY.exists():
        print(f"Creating virtualenv in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256(REQS.read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != digest:
        print("Installing requirements ...", flush=True)
        subprocess.check_call([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        subprocess.check_call([str(PY), "-m", "pip", "install", "--quiet", "-r", str(REQS)])
        STAMP.write_text(digest)


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def manage(*args: str) -> None:
    subprocess.check_call([sys.executable, "manage.py", *args], cwd=ROOT)


def start_embedded_redis() -> bool:
    """Start the embedded Redis unless REDIS_URL names one; True when we own it.

    Owning it means stopping it on exit, also when an earlier command of this
    checkout (a bare `manage.py migrate`) had started it.
    """
    if os.environ.get("REDIS_URL") or os.environ.get("REDIS_SENTINELS"):
        return False
    sys.path.insert(0, str(ROOT))
    from config import embedded_redis

    os.environ["REDIS_URL"] = embedded_redis.ensure()
    return True


def stop_embedded_redis() -> None:
    from config import embedded_redis

    embedded_redis.stop()


def public_base_url(host: str, port: str) -> str:
    """Where a person on this machine reaches the server (the banner's URLs)."""
    if os.environ.get("PUBLIC_BASE_URL"):
        return os.environ["PUBLIC_BASE_URL"].rstrip("/")
    # A wildcard bind address is not something to type into a browser.
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve() -> int:
    owns_redis = start_embedded_redis()
    procs: list[subprocess.Popen] = []
    try:
        host = os.environ.get("HOST", "127.0.0.1")
        port = os.environ.get("PORT", "8000")
        manage("migrate", "--no-input")
        # The admin's and Swagger UI's files, hashed and compressed, for WhiteNoise.
        manage("collectstatic", "--no-input", "--verbosity", "0")
        manage("bootstrap", "--base-url", public_base_url(host, port))
        web_workers = os.environ.get("WEB_WORKERS", "1")
        commands = {
            "web": [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                host,
                "--port",
                port,
                "--workers",
                web_workers,
                "--lifespan",
                "off",
                # The cheapest per connect of uvicorn's WebSocket implementations
                # (README, "Running at scale"); auto picks these too when they
                # are installed, this says so and fails if they are not.
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--ws",
                "websockets-sansio",
                # On SIGTERM open sockets get close code 1012 (service restart)
                # at once; this bounds the wait for their tasks to end.
                "--timeout-graceful-shutdown",
                "10",
            ],
            "worker+beat": [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--beat",
                # the default queue and the due-work sweep's own (config/settings/base.py)
                "-Q",
                "celery,sweep",
                "-l",
                "INFO",
                "--concurrency",
                os.environ.get("WORKER_CONCURRENCY", "2"),
                "--schedule",
                str(ROOT / ".run" / "celerybeat-schedule"),
            ],
        }
        (ROOT / ".run").mkdir(exist_ok=True)
        for name, cmd in commands.items():
            print(f"Starting {name}: {' '.join(cmd[2:])}", flush=True)
            procs.append(subprocess.Popen(cmd, cwd=ROOT))
        print(f"Serving on {public_base_url(host, port)}/ - press Ctrl-C to stop.", flush=True)
        # Installed explicitly: a shell that starts us in the background leaves
        # SIGINT ignored, and Python then never raises KeyboardInterrupt.
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return next((p.returncode for p in procs if p.returncode), 0) or 1
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT if p is procs[0] else signal.SIGTERM)
        deadline = time.time() + 15
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if owns_redis:
            stop_embedded_redis()


def test(args: list[str]) -> int:
    # Importing `config` (for the embedded Redis) sets DJANGO_SETTINGS_MODULE to the
    # run settings, and pytest-django prefers that variable to pytest.ini: drop it
    # unless the caller chose a settings module themselves.
    chosen_settings = os.environ.get("DJANGO_SETTINGS_MODULE")
    owns_redis = start_embedded_redis()
    env = os.environ.copy()
    if chosen_settings is None:
        env.pop("DJANGO_SETTINGS_MODULE", None)
    try:
        return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env)
    finally:
        if owns_redis:
            stop_embedded_redis()


def main() -> int:
    args = sys.argv[1:]
    if not in_venv():
        ensure_venv()
        os.execv(str(PY), [str(PY), str(ROOT / "run.py"), *args])
    if args[:1] == ["test"]:
        return test(args[1:])
    if args[:1] in ([], ["serve"]):
        return serve()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())

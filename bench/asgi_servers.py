"""Which ASGI server serves the project faster: uvicorn or daphne.

    python -m bench.asgi_servers [--seconds 10] [--connections 50]

Starts each server on a free loopback port with one process, loads two
endpoints with `wrk` (an authenticated inbox page, which touches the database,
and the health check, which touches the database and Redis), alternating the
servers so both see the same machine conditions, and writes
bench/results/asgi_servers.json. Needs `wrk` (Debian package `wrk`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from bench.common import setup_django, write_result

SERVERS = {
    "uvicorn": lambda port: [
        sys.executable,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--lifespan",
        "off",
        "--log-level",
        "warning",
        "--no-access-log",
    ],
    "daphne": lambda port: [
        sys.executable,
        "-m",
        "daphne",
        "-p",
        str(port),
        "-b",
        "127.0.0.1",
        "-v",
        "0",
        "config.asgi:application",
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def wrk(url: str, *, seconds: int, connections: int, token: str) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Authorization: Bearer {token}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def lat(label):
        m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 3)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": rps,
        "p50_ms": lat("50"),
        "p99_ms": lat("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    if not os.environ.get("REDIS_URL"):
        from config import embedded_redis

        os.environ["REDIS_URL"] = embedded_redis.ensure()
    setup_django()
    from django.core.management import call_command

    from notifications.models import AuthToken, User

    call_command("migrate", verbosity=0)
    with open(os.devnull, "w") as devnull:
        call_command("bootstrap", stdout=devnull)
    _, token = AuthToken.issue(user=User.objects.get(username="admin"), name="bench")

    results: dict = {name: {"inbox": [], "healthz": []} for name in SERVERS}
    for _ in range(args.rounds):
        for name, cmd in SERVERS.items():
            port = free_port()
            proc = subprocess.Popen(cmd(port), env=os.environ.copy())
            try:
                base = f"http://127.0.0.1:{port}"
                wait_up(base + "/healthz")
                for endpoint, path in (("inbox", "/api/v1/notifications"), ("healthz", "/healthz")):
                    results[name][endpoint].append(
                        wrk(base + path, seconds=args.seconds, connections=args.connections, token=token)
                    )
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=15)
    summary = {
        name: {
            endpoint: {
                "requests_per_s": round(sum(r["requests_per_s"] for r in runs) / len(runs), 1),
                "p50_ms": round(sum(r["p50_ms"] for r in runs) / len(runs), 2),
                "p99_ms": round(sum(r["p99_ms"] for r in runs) / len(runs), 2),
                "non_2xx": sum(r["non_2xx"] for r in runs),
            }
            for endpoint, runs in per.items()
        }
        for name, per in results.items()
    }
    write_result("asgi_servers", {"settings": vars(args), "summary": summary, "runs": results})


if __name__ == "__main__":
    main()

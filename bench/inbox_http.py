"""The inbox endpoints over real HTTP: a server process as `run.py` starts it, 2M rows.

    python -m bench inbox-http [--calls 1000] [--rounds 3]
        [--variant NAME=TREE[@DATABASE_URL]] ...   # another checkout to compare with

`GET /api/v1/notifications/unread` and `GET /api/v1/notifications?limit=20&offset=0`,
1,000 calls each, one after another over one keep-alive connection from this
process (`http.client`), timed from sending the request to the last byte of the
body. The data set is `bench/inbox.py`'s (2,000,000 rows, the caller holding
200,000, half unread), seeded with SQL on first use.

Every variant is its own server process (uvicorn, one worker, the flags of
`run.py`), all started before the first call; the rounds go through the
variants in turn, rotating their order, so each sees the same machine. Variants
of this checkout:

- `asgi`: as deployed;
- `asgi_auth_cache_off`: `AUTH_CACHE_SECONDS=0`, every request reads its
  token, memberships and grants from PostgreSQL;
- `asgi_rate_limits_off`: without the throttle class (the one Redis script);
- `asgi_db_pool_off`: `DB_POOL=0`, a PostgreSQL connection opened per request;
- `wsgi`: the same Django through uvicorn's WSGI interface (no ASGI thread hop).

`--variant NAME=TREE[@DATABASE_URL]` adds a server run from another checkout,
e.g. a worktree of an earlier commit with its own database (when its schema
differs) already seeded by that checkout's `python -m bench inbox`.

Results: bench/results/inbox_http-<time>.json with each round's p50/p99, the
server process's CPU time per call (user + system, from /proc: what a request
costs the server, much less disturbed by other load on the machine than the
latencies) and the load average before it; the summary takes the best round of each.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import common

TREE = Path(__file__).resolve().parent.parent
ENDPOINTS = {
    "unread": "/api/v1/notifications/unread",
    "first_page": "/api/v1/notifications?limit=20&offset=0",
}
# A token of the benchmark's user in any checkout's database (each checkout's own models).
ISSUE_TOKEN = """
import django
django.setup()
from notifications.models import AuthToken, Membership, Platform, User
user = User.objects.get(username="inbox-target")
platform = Platform.objects.get(key="bench-inbox")
Membership.objects.get_or_create(user=user, platform=platform)
print(AuthToken.issue(user=user, name="bench-http")[1])
"""


def _server(*, tree: Path, port: int, env: dict, wsgi: bool = False) -> subprocess.Popen:
    app = ["config.wsgi:application", "--interface", "wsgi"] if wsgi else ["config.asgi:application"]
    # run.py's web command (its default access log included), one worker.
    cmd = [sys.executable, "-m", "uvicorn", *app, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--lifespan", "off", "--timeout-graceful-shutdown", "10"]
    return subprocess.Popen(
        cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _wait_up(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/notifications/unread")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the server on port {port} did not come up")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(*, port: int, pid: int, path: str, token: str, calls: int, expect: dict) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def call() -> bytes:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path} on port {port}: {response.status} {body[:300]!r}")
        return body

    data = json.loads(call())["data"]
    for key, value in expect.items():
        got = len(data[key]) if isinstance(value, int) and isinstance(data.get(key), list) else data.get(key)
        assert got == value, (path, key, got, value)
    for _ in range(50):  # warm the server's caches and connections
        call()
    cpu = _cpu_seconds(pid)
    result = common.timed(call, calls)
    # The server's own CPU per call: what a request costs it, whatever else the machine runs.
    result["server_cpu_ms_per_call"] = round((_cpu_seconds(pid) - cpu) * 1000 / calls, 3)
    conn.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench inbox-http", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only", default="", help="comma-separated variants to run (default: all of this checkout and --variant)"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=TREE[@DATABASE_URL]",
        help="a server from another checkout (its own database when given)",
    )
    args = parser.parse_args(argv)
    # 1,000 calls a second as one user: the limits stay in the path, far above what it reaches.
    os.environ.setdefault("THROTTLE_USER_RATE", "1000000/minute")
    os.environ.setdefault("THROTTLE_PLATFORM_RATE", "1000000/minute")

    common.setup()
    from bench import inbox
    from notifications import selectors
    from notifications.models import AuthToken, Membership, User

    platform = inbox.data_set()
    user = User.objects.get(username="inbox-target")
    Membership.objects.get_or_create(user=user, platform=platform)
    token = AuthToken.issue(user=user, name="bench-http")[1]

    base_env = {**os.environ, "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO")}
    base_env.pop("DJANGO_SETTINGS_MODULE", None)
    prefix = os.environ.get("CACHE_KEY_PREFIX", "notify")
    own = {
        "asgi": ({}, False),
        "asgi_auth_cache_off": ({"AUTH_CACHE_SECONDS": "0"}, False),
        "asgi_rate_limits_off": ({"DJANGO_SETTINGS_MODULE": "bench.settings_http", "BENCH_RATE_LIMITS": "off"}, False),
        "asgi_db_pool_off": ({"DB_POOL": "0"}, False),
        "wsgi": ({}, True),
    }
    variants: dict[str, dict] = {
        name: {"tree": TREE, "env": {**base_env, **extra}, "wsgi": wsgi, "token": token, "database": "this"}
        for name, (extra, wsgi) in own.items()
    }
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        tree, _, database = rest.partition("@")
        env = {**base_env, "CACHE_KEY_PREFIX": f"{prefix}-{name}"}
        if database:
            env["DATABASE_URL"] = database
        issued = subprocess.run(
            [sys.executable, "-c", ISSUE_TOKEN],
            cwd=tree,
            env={**env, "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_LEVEL": "WARNING"},
            capture_output=True,
            text=True,
            check=True,
        )
        variants[name] = {
            "tree": Path(tree).resolve(),
            "env": env,
            "wsgi": False,
            "token": issued.stdout.strip().splitlines()[-1],
            "database": database or "this",
        }
    if args.only:
        wanted = args.only.split(",")
        variants = {name: v for name, v in variants.items() if name in wanted}

    unread = selectors.inbox_unread_count(user=user, platform=platform)
    expect = {"unread": {"unread": unread}, "first_page": {"notifications": 20, "limit": 20, "offset": 0}}
    servers = {}
    try:
        for name, variant in variants.items():
            port = _free_port()
            servers[name] = (port, _server(tree=variant["tree"], port=port, env=variant["env"], wsgi=variant["wsgi"]))
        for port, proc in servers.values():
            _wait_up(port, proc)
        rounds = []
        names = list(variants)
        for number in range(args.rounds):
            order = names[number % len(names) :] + names[: number % len(names)]
            load = os.getloadavg()
            print(f"round {number + 1}: load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
            figures: dict = {}
            for name in order:
                port, proc = servers[name]
                figures[name] = {}
                for endpoint, path in ENDPOINTS.items():
                    figures[name][endpoint] = _measure(
                        port=port,
                        pid=proc.pid,
                        path=path,
                        token=variants[name]["token"],
                        calls=args.calls,
                        expect=expect[endpoint],
                    )
                    m = figures[name][endpoint]
                    print(
                        f"  {name:24} {endpoint:10} p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms  "
                        f"server CPU {m['server_cpu_ms_per_call']:5.2f} ms/call",
                        flush=True,
                    )
            rounds.append({"load_average": [round(x, 2) for x in load], "figures": figures})
    finally:
        for _, proc in servers.values():
            os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in servers.values():
            proc.wait(timeout=30)

    best = {
        name: {
            endpoint: {
                stat: min(r["figures"][name][endpoint][stat] for r in rounds)
                for stat in ("p50_ms", "p99_ms", "server_cpu_ms_per_call")
            }
            for endpoint in ENDPOINTS
        }
        for name in variants
    }
    path = common.write(
        "inbox_http",
        {
            "rows": inbox.TOTAL_ROWS,
            "user_rows": inbox.TARGET_ROWS,
            "user_unread": unread,
            "calls": args.calls,
            "endpoints": ENDPOINTS,
            "server": "uvicorn, 1 worker, run.py's flags; client: http.client, one keep-alive connection",
            "variants": {
                name: {"tree": str(v["tree"]), "database": v["database"], "wsgi": v["wsgi"]}
                for name, v in variants.items()
            },
            "best_of_rounds": best,
            "rounds": rounds,
        },
    )
    print("best of", args.rounds, "rounds (p50 / p99 ms):")
    for name, figures in best.items():
        cells = "  ".join(
            f"{e} {f['p50_ms']:.2f} / {f['p99_ms']:.2f} (CPU {f['server_cpu_ms_per_call']:.2f})"
            for e, f in figures.items()
        )
        print(f"  {name:24} {cells}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""The inbox endpoints' cost per request in CPU instructions: repeatable on a shared machine.

    python -m bench inbox-instructions [--calls 300] [--variant NAME=TREE[@DATABASE_URL]] ...

Latencies and CPU seconds on a shared 2-core machine move by half from one
minute to the next; the instructions a request executes do not. Each variant
(this checkout as `now`, and every `--variant`, e.g. a worktree of an earlier
commit) serves `GET /api/v1/notifications/unread` and the first page
(`?limit=20&offset=0`) in-process: `config.asgi`'s application as the web
process loads it, called with an ASGI scope, no server or socket in between.
Each runs under `valgrind --tool=callgrind` twice, after 50 warm-up calls and
after 50 + `--calls`, and the difference over `--calls` is the instructions of
one request in the web process (its threads included; PostgreSQL and Redis
are other processes). The runs go two at a time (instruction counts do not
depend on what else the machine does).

The data set is `bench/inbox.py`'s (2,000,000 rows), as for `inbox-http`.
Results: bench/results/inbox_instructions.json, with each variant's ratio to
the first one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import common
from bench.inbox_http import ENDPOINTS, ISSUE_TOKEN

TREE = Path(__file__).resolve().parent.parent
WARM_UP = 50
# Run with the tree's own code (`python -c`, cwd and PYTHONPATH the tree): an
# earlier checkout has no copy of this module.
RUNNER = """
import asyncio, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
from config.asgi import application

path, calls, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
route, _, query = path.partition("?")
scope = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
    "path": route, "raw_path": route.encode(), "query_string": query.encode(), "root_path": "",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", f"Bearer {token}".encode()),
                (b"accept", b"application/json")],
    "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
}

async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}

async def main():
    for _ in range(calls):
        sent = []

        async def send(message):
            sent.append(message)

        await application(dict(scope), receive, send)
        assert sent[0]["status"] == 200, sent

asyncio.run(main())
"""
COLLECTED = re.compile(r"Collected : (\d+)")


def _instructions(*, tree: Path, env: dict, path: str, calls: int, token: str) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, "-W", "ignore", "-c", RUNNER, path, str(calls), token]
    done = subprocess.run(
        command, cwd=tree, env={**env, "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=False
    )
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{tree}: {path} x {calls} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench inbox-instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=TREE[@DATABASE_URL]",
        help="another checkout (its own database when given), compared with this one",
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    os.environ.setdefault("THROTTLE_USER_RATE", "1000000/minute")
    os.environ.setdefault("THROTTLE_PLATFORM_RATE", "1000000/minute")

    common.setup()
    from bench import inbox

    inbox.data_set()

    base_env = {**os.environ, "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings"}
    variants = {"now": (TREE, base_env)}
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        tree, _, database = rest.partition("@")
        variants[name] = (Path(tree).resolve(), {**base_env, **({"DATABASE_URL": database} if database else {})})
    tokens = {
        name: subprocess.run(
            [sys.executable, "-c", ISSUE_TOKEN], cwd=tree, env=env, capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
        for name, (tree, env) in variants.items()
    }

    jobs = {
        (name, endpoint, calls): (tree, env, path)
        for name, (tree, env) in variants.items()
        for endpoint, path in ENDPOINTS.items()
        for calls in (WARM_UP, WARM_UP + args.calls)
    }
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {
            key: pool.submit(_instructions, tree=tree, env=env, path=path, calls=key[2], token=tokens[key[0]])
            for key, (tree, env, path) in jobs.items()
        }
        counted = {key: future.result() for key, future in futures.items()}

    results: dict = {}
    first = next(iter(variants))
    for name in variants:
        results[name] = {}
        for endpoint in ENDPOINTS:
            per_call = (
                counted[(name, endpoint, WARM_UP + args.calls)] - counted[(name, endpoint, WARM_UP)]
            ) / args.calls
            results[name][endpoint] = {"instructions_per_request": round(per_call)}
    for name in variants:
        for endpoint in ENDPOINTS:
            own = results[name][endpoint]["instructions_per_request"]
            results[name][endpoint]["ratio_to_" + first] = round(
                own / results[first][endpoint]["instructions_per_request"], 3
            )
            print(f"{name:20} {endpoint:10} {own / 1e6:7.3f} M instructions per request", flush=True)
    common.write_result("inbox_instructions", {"calls": args.calls, "warm_up": WARM_UP, "variants": results})


if __name__ == "__main__":
    main()

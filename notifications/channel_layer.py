"""The channel layer: channels-redis with a connection pool that waits.

redis-py's asyncio `ConnectionPool` raises `MaxConnectionsError` as soon as
`max_connections` (100) are in use. One ASGI process holding thousands of
sockets asks for many at once when its clients go together (each disconnect
discards two group memberships): the calls over the limit failed and left
their memberships behind in Redis. A `BlockingConnectionPool` of the same size
makes those calls queue for a free connection instead (up to
`pool_timeout` seconds), so a mass disconnect or reconnect is slower, never
lossy.

Hosts given as `{"address": url, ...}` get the waiting pool; other host forms
(Sentinel) keep channels-redis's own.

It also makes a cancelled receive end. On Python 3.11 `asyncio.wait_for`
drops a cancellation that arrives as its inner call completes (fixed in 3.12),
and redis-py sends every command through `wait_for` when a socket timeout is
set. When the process's one receiving task lost its cancellation that way
(a socket closing while it sent BZPOPMIN), channels-redis went on popping
forever, the consumer's task never finished and uvicorn hung on SIGTERM
("Waiting for background tasks to complete"). The receive loop now checks for
a pending cancellation before each pop, and pops block for `brpop_timeout`
seconds at most, so such a task ends within that. A message popped meanwhile
is not lost: channels-redis keeps it in its backup queue and restores it.

`groups_add`/`groups_discard` join and leave several groups in one pipelined
round trip per shard: a socket joins two groups on every connect.
"""

from __future__ import annotations

import asyncio
import time

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class RedisChannelLayer(BaseRedisChannelLayer):
    # One blocking pop per ASGI process (all its sockets share one receive
    # loop): a shorter block costs one idle round trip a second or two.
    brpop_timeout = 2

    def __init__(self, *args, max_connections: int = 100, pool_timeout: float = 30, **kwargs):
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        super().__init__(*args, **kwargs)

    def create_pool(self, index):
        host = dict(self.hosts[index])
        if "address" not in host:
            return super().create_pool(index)
        address = host.pop("address")
        host.setdefault("max_connections", self.max_connections)
        host.setdefault("timeout", self.pool_timeout)
        return BlockingConnectionPool.from_url(address, **host)

    async def _brpop_with_clean(self, index, channel, timeout):
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError("receive cancelled")
        return await super()._brpop_with_clean(index, channel, timeout)

    async def groups_add(self, groups, channel) -> None:
        """`group_add` for several groups in one round trip per shard (a socket joins two on connect)."""
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        now = time.time()
        for index, names in self._by_shard(groups).items():
            async with self.connection(index).pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.zadd(self._group_key(name), {channel: now})
                    pipe.expire(self._group_key(name), self.group_expiry)
                await pipe.execute()

    async def groups_discard(self, groups, channel) -> None:
        """`group_discard` for several groups in one round trip per shard."""
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        for index, names in self._by_shard(groups).items():
            async with self.connection(index).pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.zrem(self._group_key(name), channel)
                await pipe.execute()

    def _by_shard(self, groups) -> dict[int, list[str]]:
        shards: dict[int, list[str]] = {}
        for group in groups:
            assert self.require_valid_group_name(group), "Group name not valid"
            shards.setdefault(self.consistent_hash(group), []).append(group)
        return shards

"""The channel layer: channels-redis with a connection pool that waits.

redis-py's asyncio `ConnectionPool` raises `MaxConnectionsError` as soon as
`max_connections` (100) are in use. One ASGI process holding thousands of
sockets asks for many at once when its clients go together (each disconnect
discards two group memberships): the calls over the limit failed and left
their memberships behind in Redis. A `BlockingConnectionPool` of the same size
makes those calls queue for a free connection instead (up to
`pool_timeout` seconds), so a mass disconnect or reconnect is slower, never
lossy.

Hosts in channels-redis's Sentinel form (`{"sentinels": [...], "master_name":
...}`, `config.redis_topology`) get a waiting pool to the current master.

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

`groups_add`/`groups_discard` join and leave several groups, and the calls
of all sockets of the event loop that arrive together share one
round trip per shard: a socket joins two groups on every connect and leaves
them on disconnect, and a pipeline of its own per socket cost more CPU in
redis-py than the rest of the handshake. Ten thousand clients that connect or
go together are a few dozen round trips, and each call still returns only once
its own commands ran (in call order, so a leave never overtakes its join).
A batch is one script call per shard (`_MEMBERSHIP_LUA`), not four commands per
socket in a pipeline: redis-py's packing and parsing of those commands was the
biggest share of the joins' CPU.
"""

from __future__ import annotations

import asyncio
import time

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.sentinel import Sentinel

from config.redis_topology import WaitingSentinelPool


class RedisChannelLayer(BaseRedisChannelLayer):
    # One blocking pop per ASGI process (all its sockets share one receive
    # loop): a shorter block costs one idle round trip a second or two.
    brpop_timeout = 2

    def __init__(self, *args, max_connections: int = 100, pool_timeout: float = 30, **kwargs):
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self._membership_batches: dict[asyncio.AbstractEventLoop, _MembershipBatch] = {}
        super().__init__(*args, **kwargs)

    def create_pool(self, index):
        host = dict(self.hosts[index])
        host.setdefault("max_connections", self.max_connections)
        host.setdefault("timeout", self.pool_timeout)
        if "address" in host:
            return BlockingConnectionPool.from_url(host.pop("address"), **host)
        if "master_name" in host:
            sentinels = Sentinel(
                [tuple(s) for s in host.pop("sentinels")], sentinel_kwargs=host.pop("sentinel_kwargs", None)
            )
            return WaitingSentinelPool(host.pop("master_name"), sentinels, **host)
        return BlockingConnectionPool(**host)

    async def _brpop_with_clean(self, index, channel, timeout):
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError("receive cancelled")
        return await super()._brpop_with_clean(index, channel, timeout)

    async def groups_add(self, groups, channel) -> None:
        """`group_add` for several groups, batched with the other sockets' (a socket joins two on connect)."""
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        await self._membership_batch().submit(self._by_shard(groups), channel, join=True)

    async def groups_discard(self, groups, channel) -> None:
        """`group_discard` for several groups, batched with the other sockets'."""
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        await self._membership_batch().submit(self._by_shard(groups), channel, join=False)

    def _membership_batch(self) -> _MembershipBatch:
        loop = asyncio.get_running_loop()
        batch = self._membership_batches.get(loop)
        if batch is None:
            batch = self._membership_batches[loop] = _MembershipBatch(self, loop)
        return batch

    def _by_shard(self, groups) -> dict[int, list[str]]:
        shards: dict[int, list[str]] = {}
        for group in groups:
            assert self.require_valid_group_name(group), "Group name not valid"
            shards.setdefault(self.consistent_hash(group), []).append(group)
        return shards


# Sockets per script call at most (two groups each): one call holds Redis
# for a few milliseconds at most.
MEMBERSHIP_BATCH = 2000

# KEYS: group keys. ARGV: per key "1" (join) or "0" (leave) and the channel,
# then the time and the groups' expiry. In order: a leave never overtakes the
# join before it. What channels-redis's group_add/group_discard do, per key.
_MEMBERSHIP_LUA = """
local n = #KEYS
local now = ARGV[2 * n + 1]
local expiry = ARGV[2 * n + 2]
for i = 1, n do
    if ARGV[2 * i - 1] == '1' then
        redis.call('ZADD', KEYS[i], now, ARGV[2 * i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        redis.call('ZREM', KEYS[i], ARGV[2 * i])
    end
end
return n
"""


class _MembershipBatch:
    """The group joins and leaves of one event loop's sockets, sent together.

    A call queues its commands and waits; one task sends everything queued so
    far in one script call per shard, while the calls that arrive meanwhile queue
    for the next. One waiting call costs no more than before (the task starts
    at once); many cost one round trip per shard and batch, not one each.
    """

    def __init__(self, layer: RedisChannelLayer, loop: asyncio.AbstractEventLoop):
        self.layer = layer
        self.loop = loop
        self.pending: list[tuple[dict[int, list[str]], str, bool, asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def submit(self, by_shard: dict[int, list[str]], channel: str, *, join: bool) -> None:
        future = self.loop.create_future()
        self.pending.append((by_shard, channel, join, future))
        if self.task is None or self.task.done():  # done: cancelled before it began
            self.task = self.loop.create_task(self._run())
        await future

    async def _run(self) -> None:
        batch = []
        try:
            while self.pending:
                batch, self.pending = self.pending[:MEMBERSHIP_BATCH], self.pending[MEMBERSHIP_BATCH:]
                try:
                    await self._send(batch)
                except Exception as error:  # noqa: BLE001 - each call of the batch fails with it
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for *_, future in batch:
                    if not future.done():
                        future.set_result(None)
        except asyncio.CancelledError:
            # The loop is going away: so are the calls waiting for these.
            for *_, future in [*batch, *self.pending]:
                future.cancel()
            self.pending = []
            raise
        finally:
            self.task = None
            if not self.pending and self.layer._membership_batches.get(self.loop) is self:
                del self.layer._membership_batches[self.loop]

    async def _send(self, batch) -> None:
        layer = self.layer
        now = time.time()
        shards: dict[int, list[tuple[str, str, bool]]] = {}
        for by_shard, channel, join, _future in batch:
            for index, names in by_shard.items():
                shards.setdefault(index, []).extend((name, channel, join) for name in names)
        for index, changes in shards.items():
            keys, args = [], []
            for name, channel, join in changes:
                keys.append(layer._group_key(name))
                args += ("1" if join else "0", channel)
            script = layer.connection(index).register_script(_MEMBERSHIP_LUA)
            await script(keys=keys, args=[*args, now, layer.group_expiry])

"""One reader per ASGI process for the socket frames of all its WebSockets.

channels-redis delivers a message per socket: for a send to 10,000 users on
one process that was 10,000 pops of four Redis round trips each, plus a task
switch through channels' dispatch per socket, about a millisecond of CPU per
delivered message. Here the sender (`notifications.realtime`) puts ONE entry
per send and process into the process's Redis stream (`<prefix>:hub:<process>`),
listing each frame's text, platform and local sockets. The process's hub reads
it with a blocking XREAD, deletes what it read, and hands each frame to its
sockets in memory: a dictionary lookup and a queue put per socket, no thread
hop, no per-socket Redis traffic.

A Redis stream (not pub/sub) because an entry waits for its reader: a hub
whose connection dropped reads on from the last entry it saw when it is back,
and a big send never meets pub/sub's output-buffer limit, which disconnects a
subscriber that reads too slowly. The stream lives on the shard that
channels-redis uses for the process's own channel, through the layer's own
connection pools, so Sentinel settings apply to it unchanged.

Each socket writes through its own bounded queue (`WEBSOCKET_SEND_QUEUE`
frames) and writer task, so a client that stops reading stalls only its own
writer. When its queue is full the socket is closed with 1013 (try again
later): the client reconnects and fetches what it missed from the inbox API,
as the inbox element does on every (re)connect. Dropping frames silently
instead would leave that client's inbox wrong without it knowing.

The hub starts with the first socket of an event loop and stops with the last
(tests run one loop per test; uvicorn one per process), deleting its stream.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import redis
from django.utils import timezone

from notifications.realtime import hub_key, hub_shard

logger = logging.getLogger(__name__)

# The close code of a socket whose client fell `WEBSOCKET_SEND_QUEUE` frames
# behind (RFC 6455 "Try Again Later"): reconnect, then refetch the inbox.
CLOSE_TRY_AGAIN = 1013
# XREAD blocks this long at most, so a stopping hub whose cancellation was
# swallowed by redis-py's wait_for (Python 3.11) ends within it.
BLOCK_MS = 2000
# Entries per read: one send is one entry per slice of 5,000 recipients.
COUNT = 16
RETRY_SECONDS = 1.0


def _log_failure(message: str, key: str, error: Exception) -> None:
    """A lost Redis connection (a restart, a Sentinel failover) is expected: one line; anything else a traceback."""
    expected = isinstance(error, redis.ConnectionError)
    logger.warning("WebSocket hub: " + message, key, error.__class__.__name__, exc_info=not expected)


class Socket(Protocol):
    def deliver(self, platform_id: int, text: str, now) -> None: ...

    def control(self, kind: str) -> None: ...


class SocketHub:
    _hubs: dict[tuple[asyncio.AbstractEventLoop, int], SocketHub] = {}

    def __init__(self, layer, loop: asyncio.AbstractEventLoop):
        self.layer = layer
        self.loop = loop
        self.process = layer.client_prefix
        self.key = hub_key(layer, self.process)
        self.shard = hub_shard(layer, self.process)
        self.sockets: dict[str, Socket] = {}
        self.stopping = False
        self.started: asyncio.Future = loop.create_future()
        self.task = loop.create_task(self._run())

    @classmethod
    def supports(cls, layer) -> bool:
        from notifications.realtime import _is_redis_layer

        return _is_redis_layer(layer)

    @classmethod
    async def join(cls, layer, channel: str, socket: Socket) -> None:
        """Deliver this process's frames for `channel` to `socket`; returns once the hub reads.

        Call before the socket joins its groups: a frame sent after that
        reaches it.
        """
        loop = asyncio.get_running_loop()
        key = (loop, id(layer))
        hub = cls._hubs.get(key)
        if hub is None:
            hub = cls._hubs[key] = cls(layer, loop)
        hub.sockets[channel] = socket
        await asyncio.shield(hub.started)

    @classmethod
    def leave(cls, layer, channel: str) -> None:
        key = (asyncio.get_running_loop(), id(layer))
        hub = cls._hubs.get(key)
        if hub is None:
            return
        hub.sockets.pop(channel, None)
        if not hub.sockets:
            del cls._hubs[key]
            hub.stop()

    def stop(self) -> None:
        self.stopping = True
        self.task.cancel()

    async def _run(self) -> None:
        connection = self.layer.connection(self.shard)
        try:
            # Read from the newest entry already there: anything older was for
            # sockets this process no longer has.
            newest = await connection.xrevrange(self.key, count=1)
            last_id = newest[0][0] if newest else b"0-0"
        except Exception as error:  # noqa: BLE001 - the sockets' joins get it
            self.started.set_exception(error)
            self._forget()
            return
        self.started.set_result(None)
        try:
            while not self.stopping:
                try:
                    reply = await connection.xread({self.key: last_id}, count=COUNT, block=BLOCK_MS)
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # noqa: BLE001 - logged (with its traceback unless expected)
                    # The stream keeps what arrives meanwhile: read on from last_id.
                    _log_failure("reading %s failed (%s); retrying", self.key, error)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                if not reply:
                    continue
                read = []
                for _key, entries in reply:
                    for entry_id, fields in entries:
                        last_id = entry_id
                        read.append(entry_id)
                        self._fan_out(self.layer.deserialize(fields[b"m"]))
                try:
                    await connection.xdel(self.key, *read)
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # noqa: BLE001 - left over entries go with the key's expiry
                    _log_failure("trimming %s failed (%s)", self.key, error)
        finally:
            if self._hubs.get((self.loop, id(self.layer))) is None:
                # Nobody reads this stream any more (a new hub of this process
                # would have registered itself): leave nothing behind.
                try:
                    await connection.delete(self.key)
                except BaseException:  # noqa: BLE001 - best effort; the key expires anyway
                    pass

    def _forget(self) -> None:
        key = (self.loop, id(self.layer))
        if self._hubs.get(key) is self:
            del self._hubs[key]

    def _fan_out(self, entry: dict) -> None:
        now = timezone.now()
        sockets = self.sockets
        for platform_id, text, channels in entry["frames"]:
            for channel in channels:
                socket = sockets.get(channel)
                if socket is None:
                    continue
                if platform_id is None:
                    socket.control(text)  # a credentials message: text is its type
                else:
                    socket.deliver(platform_id, text, now)

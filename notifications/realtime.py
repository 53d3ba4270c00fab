"""Group names and messages of the in-app WebSocket, and a batched group send.

`channel_layer.group_send` costs channels-redis four round trips per group (trim
the group, read it, trim each member channel, run the send script), so one
notification to 100k users is 400k round trips, most of them to find that the
user has no open socket. `groups_send` does the same work for many groups in a
handful of round trips:

1. one Lua script per shard and slice of groups trims expired members and
   returns only the groups that have members, with their channel names;
2. one Lua script per shard and slice of messages adds each message to the
   sorted set of each member channel, honouring capacity, exactly as
   `RedisChannelLayer.group_send`'s own script does.

It relies on channels-redis's storage format (4.x, pinned in requirements):
a group is the sorted set `<prefix>:group:<name>` of channel names scored by
join time; a socket's channel is `specific.<process>!<id>`.

Where a message goes depends on its type:

- The socket frames (`notification.created`, `inbox.changed`, see
  `HUB_EVENTS`) are encoded here, once, as the JSON text the client receives
  (the credentials messages travel with them, in order, as their type), and
  every ASGI process gets ONE stream entry per send (per slice of
  `SLICE` groups) listing, for each frame, its platform and the local sockets
  it is for. The entry goes to the process's Redis stream
  `<prefix>:hub:<process>` (XADD); the process's `SocketHub`
  (notifications/socket_hub.py) reads it and hands each frame to its sockets
  in memory. 10,000 users on one process are one XADD and one read, not
  10,000 channel messages of four round trips each.
- Anything else goes the channels way: one message per (message, process) into the sorted set
  `<prefix>specific.<process>!`, carrying `__asgi_channel__` = the list of that
  process's channels it is for, read by the unchanged
  `RedisChannelLayer.receive`. The in-app sockets do not read it: on the Redis
  layer they get everything through their hub and wait only for their client
  (`NotificationConsumer.__call__`), so a message type meant for sockets must be
  one of `HUB_EVENTS`. Nor does a plain `group_send` reach them any more.

Every socket of a user gets each message exactly once: sockets in one process
share one entry listing all of them, sockets in different processes get one
entry per process. Other layers (in-memory) fall back to plain `group_send`
and the consumer's handlers. `notifications/tests/test_realtime.py` checks this
against the real layer.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

# Keys per script call: big enough to amortise round trips, small enough that
# one call never blocks Redis for more than a few milliseconds.
SLICE = 5000

# ARGV[1]: members joined before this are expired. ARGV[2]: the group keys,
# one per line (valid group names hold no newline): one argument, not 5,000,
# because redis-py's packing of a command's arguments one by one was most of a
# fan-out's announce CPU. A group without a key (no socket: most users) costs
# one EXISTS.
# Returns {index, member, member, ..., 0, index, ...} for non-empty groups only.
_MEMBERS_LUA = """
local out = {}
local i = 0
for key in string.gmatch(ARGV[2], "[^\\n]+") do
    i = i + 1
    if redis.call('EXISTS', key) == 1 then
        redis.call('ZREMRANGEBYSCORE', key, 0, ARGV[1])
        local members = redis.call('ZRANGE', key, 0, -1)
        if #members > 0 then
            out[#out + 1] = i
            for j = 1, #members do out[#out + 1] = members[j] end
            out[#out + 1] = 0
        end
    end
end
return out
"""

# KEYS: channel keys (may repeat: one process hosts many users' sockets).
# ARGV: messages (n), capacities (n), scores (n), then expiry and the
# "expired before" cut-off. Same checks as channels-redis's group_send script.
_SEND_LUA = """
local n = #KEYS
local expiry = ARGV[3 * n + 1]
local cutoff = ARGV[3 * n + 2]
local trimmed = {}
local over = 0
for i = 1, n do
    local key = KEYS[i]
    if not trimmed[key] then
        redis.call('ZREMRANGEBYSCORE', key, 0, cutoff)
        trimmed[key] = true
    end
    if redis.call('ZCOUNT', key, '-inf', '+inf') < tonumber(ARGV[n + i]) then
        redis.call('ZADD', key, ARGV[2 * n + i], ARGV[i])
        redis.call('EXPIRE', key, expiry)
    else
        over = over + 1
    end
end
return over
"""


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def created_notification_event(payload: dict, *, platform_id: int, silent: bool = False) -> dict:
    """The channel-layer message a consumer turns into CREATED_NOTIFICATION.

    `platform_id` is not part of what the client sees: a socket is opened on one
    platform and forwards only that platform's notifications. `silent`: the
    client shows it without sound or announcement (the recipient's quiet hours).
    """
    event = {
        "type": "notification.created",
        "recipient_id": payload["recipient_id"],
        "platform_id": platform_id,
        "payload": payload,
    }
    if silent:
        event["silent"] = True
    return event


def inbox_changed_event(
    *, platform_id: int, platform_key: str, ids: list[str] | None, status: str, unread: int
) -> dict:
    """The channel-layer message a consumer turns into INBOX_UPDATED (ids None: the whole inbox)."""
    return {
        "type": "inbox.changed",
        "platform_id": platform_id,
        "platform": platform_key,
        "ids": ids,
        "status": status,
        "unread": unread,
    }


# Channel-layer event types that are socket frames: sent through the process hubs.
FRAME_EVENTS = frozenset({"notification.created", "inbox.changed"})
# The credentials messages (notifications/credentials.py) take the same road,
# so that a socket learns its credentials ended before any frame sent after that.
CONTROL_EVENTS = frozenset({"credentials.revoked", "credentials.check"})
HUB_EVENTS = FRAME_EVENTS | CONTROL_EVENTS
# Entries a hub stream keeps at most (approximately): the hub deletes what it
# read, so only a process that died leaves any, and they expire with the key.
HUB_STREAM_MAXLEN = 1000


def socket_frame(event: dict) -> str:
    """The JSON text a socket sends for a `HUB_EVENTS` event: the client's wire format.

    CREATED_NOTIFICATION is the spec's broadcast payload; INBOX_UPDATED tells
    the other tabs and devices of a user what was read or dismissed.
    """
    if event["type"] == "notification.created":
        content = {"type": "CREATED_NOTIFICATION", "recipient_id": event["recipient_id"], "payload": event["payload"]}
        if event.get("silent"):
            content["silent"] = True
    else:
        content = {
            "type": "INBOX_UPDATED",
            "platform": event["platform"],
            "ids": event["ids"],
            "status": event["status"],
            "unread": event["unread"],
        }
    return json.dumps(content)


def process_of(channel: str) -> str | None:
    """The ASGI process (channels-redis client prefix) of a socket channel, None for others."""
    if not channel.startswith("specific.") or "!" not in channel:
        return None
    return channel[len("specific.") : channel.index("!")]


def hub_key(layer, process: str) -> str:
    """The Redis stream a process's `SocketHub` reads."""
    return f"{layer.prefix}:hub:{process}"


def hub_shard(layer, process: str) -> int:
    """The shard of a process's stream: the one its channels-redis channel lives on."""
    return layer.consistent_hash(f"specific.{process}!")


def _is_redis_layer(layer) -> bool:
    try:
        from channels_redis.core import RedisChannelLayer
    except ImportError:  # channels-redis not installed: nothing to batch
        return False
    return isinstance(layer, RedisChannelLayer)


async def groups_send(messages: Sequence[tuple[str, dict]], layer=None) -> int:
    """Send each `(group, message)`; returns how many channel deliveries were queued."""
    return await groups_send_each([group for group, _ in messages], lambda i: messages[i][1], layer=layer)


async def groups_send_each(groups: Sequence[str], build: Callable[[int], dict], layer=None) -> int:
    """Send `build(i)` to `groups[i]`, calling `build` only for groups that have members.

    A fan-out to 100k users builds payloads only for those with an open socket.
    """
    layer = layer or get_channel_layer()
    if layer is None or not groups:
        return 0
    if not _is_redis_layer(layer):
        for index, group in enumerate(groups):
            await layer.group_send(group, build(index))
        return len(groups)
    return await _redis_groups_send(layer, groups, build)


def groups_send_sync(messages: Sequence[tuple[str, dict]], layer=None) -> int:
    return async_to_sync(groups_send)(messages, layer)


def groups_send_each_sync(groups: Sequence[str], build: Callable[[int], dict], layer=None) -> int:
    return async_to_sync(groups_send_each)(groups, build, layer)


def _slices(items: Sequence, size: int = SLICE) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _redis_groups_send(layer, groups: Sequence[str], build: Callable[[int], dict]) -> int:
    now = time.time()
    # 1. Who is listening: members of every group, per shard of the group key.
    by_shard: dict[int, list[int]] = collections.defaultdict(list)
    checked = set()
    for index, group in enumerate(groups):
        # Group names follow a few patterns ("user.<id>"): check each pattern once.
        shape = group.rstrip("0123456789")
        if shape not in checked:
            assert layer.require_valid_group_name(group), "Group name not valid"
            checked.add(shape)
        by_shard[layer.consistent_hash(group)].append(index)
    members: dict[int, list[str]] = {}
    for shard, indexes in by_shard.items():
        connection = layer.connection(shard)
        script = connection.register_script(_MEMBERS_LUA)
        for part in _slices(indexes):
            keys = b"\n".join([layer._group_key(groups[i]) for i in part])
            reply = await script(keys=[], args=[int(now) - layer.group_expiry, keys])
            position = 0
            while position < len(reply):
                local = int(reply[position]) - 1
                position += 1
                names = []
                while reply[position] != 0:
                    names.append(reply[position].decode())
                    position += 1
                position += 1
                members[part[local]] = names
    if not members:
        return 0

    # 2. Socket frames: per process, [platform, text, its channels] in message
    # order. Other messages: one serialized message per (message, process
    # channel key), listing the sockets of that process it is for; in message
    # order, scored in that order.
    frames: dict[str, list[list]] = collections.defaultdict(list)
    outgoing: dict[int, list[tuple[bytes, bytes, int, float]]] = collections.defaultdict(list)
    sequence = 0
    queued = 0
    for index in sorted(members):
        message = build(index)
        per_key: dict[str, list[str]] = {}
        if message["type"] in HUB_EVENTS:
            # A control event travels as [None, its type, channels].
            control = message["type"] in CONTROL_EVENTS
            platform_id, text = (None, message["type"]) if control else (message["platform_id"], socket_frame(message))
            per_process: dict[str, list[str]] = {}
            for channel in members[index]:
                per_process.setdefault(process_of(channel), []).append(channel)
            others = per_process.pop(None, None)
            for process, channels in per_process.items():
                frames[process].append([platform_id, text, channels])
                queued += 1
            if not others:
                continue
            members[index] = others
        for channel in members[index]:
            key = layer.prefix + (layer.non_local_name(channel) if "!" in channel else channel)
            per_key.setdefault(key, []).append(channel)
        for key, channels in per_key.items():
            body = layer.serialize({**message, "__asgi_channel__": channels})
            shard = layer.consistent_hash(key[len(layer.prefix) :])
            # Microsecond steps keep one user's messages in send order.
            outgoing[shard].append((key.encode(), body, layer.get_capacity(channels[0]), now + sequence * 1e-6))
            sequence += 1

    await _hubs_send(layer, frames)
    for shard, entries in outgoing.items():
        connection = layer.connection(shard)
        script = connection.register_script(_SEND_LUA)
        for part in _slices(entries):
            keys = [entry[0] for entry in part]
            args = [entry[1] for entry in part] + [entry[2] for entry in part] + [entry[3] for entry in part]
            args += [int(layer.expiry), int(now) - int(layer.expiry)]
            over = await script(keys=keys, args=args)
            if over:
                logger.warning("%s of %s in-app messages dropped: channel over capacity", over, len(part))
            queued += len(part) - over
    return queued


async def _hubs_send(layer, frames: dict[str, list[list]]) -> None:
    """XADD each process's frames to its hub stream, a slice per entry, one pipeline per shard."""
    by_shard: dict[int, list[str]] = collections.defaultdict(list)
    for process in frames:
        by_shard[hub_shard(layer, process)].append(process)
    for shard, processes in by_shard.items():
        async with layer.connection(shard).pipeline(transaction=False) as pipe:
            for process in processes:
                key = hub_key(layer, process)
                for part in _slices(frames[process]):
                    pipe.xadd(key, {"m": layer.serialize({"frames": list(part)})}, maxlen=HUB_STREAM_MAXLEN)
                # A process that died leaves its stream to expire, as channels-redis does its queues.
                pipe.expire(key, int(layer.expiry))
            await pipe.execute()

"""In-app real time: the batched group send against real channels-redis, and the consumer."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from notifications.channel_layer import RedisChannelLayer as ProjectRedisLayer
from notifications.models import AuthToken, Notification
from notifications.pipeline import Message, Recipient, notification_send
from notifications.realtime import groups_send, groups_send_each, hub_key
from notifications.socket_hub import SocketHub

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _layer(**config) -> RedisChannelLayer:
    # A prefix of its own: these tests never see the application's messages.
    hosts = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]
    return RedisChannelLayer(hosts=hosts, prefix="test-realtime", **config)


async def _nothing(layer, channel, timeout=0.3) -> bool:
    try:
        await asyncio.wait_for(layer.receive(channel), timeout)
    except TimeoutError:
        return True
    return False


def test_groups_send_reaches_every_socket_once_through_the_unchanged_receive():
    """Messages that are neither socket frames nor credentials messages go the channels way."""

    async def scenario():
        web1, web2 = _layer(), _layer()  # two ASGI processes
        try:
            jane_tab1, jane_tab2 = await web1.new_channel(), await web1.new_channel()
            jane_phone = await web2.new_channel()
            bob = await web1.new_channel()
            for group, channel in [("user.1", jane_tab1), ("user.1", jane_tab2), ("user.1", jane_phone)]:
                await web1.group_add(group, channel)
            await web1.group_add("user.2", bob)

            first, second = {"type": "test.message", "n": 1}, {"type": "test.message", "n": 2}
            to_bob = {"type": "test.message", "n": 3}
            queued = await groups_send(
                [("user.1", first), ("user.2", to_bob), ("user.3", {"type": "x"}), ("user.1", second)], layer=web1
            )
            # jane: one message per process per notification; bob: one; user 3 has no socket.
            assert queued == 5

            for layer, channel in [(web1, jane_tab1), (web1, jane_tab2), (web2, jane_phone)]:
                assert await layer.receive(channel) == first
                assert await layer.receive(channel) == second  # in send order
                assert await _nothing(layer, channel)
            assert await web1.receive(bob) == to_bob
            assert await _nothing(web1, bob)
        finally:
            await web1.flush()
            await web2.flush()

    async_to_sync(scenario)()


def test_groups_send_each_builds_messages_only_for_groups_with_members():
    async def scenario():
        layer = _layer()
        try:
            channel = await layer.new_channel()
            await layer.group_add("user.42", channel)
            built = []

            def build(index):
                built.append(index)
                return {"type": "m", "n": index}

            groups = [f"user.{n}" for n in range(1000)]
            assert await groups_send_each(groups, build, layer=layer) == 1
            assert built == [42]
            assert (await layer.receive(channel))["n"] == 42
        finally:
            await layer.flush()

    async_to_sync(scenario)()


def test_groups_send_drops_expired_members_and_respects_capacity():
    async def scenario():
        layer = _layer(group_expiry=60, channel_capacity={"specific.*": 2})
        try:
            live, stale = await layer.new_channel(), await layer.new_channel()
            await layer.group_add("user.7", live)
            await layer.group_add("user.8", stale)
            # A member that joined before group_expiry is gone, as with group_send.
            connection = layer.connection(0)
            await connection.zadd(layer._group_key("user.8"), {stale: 1})
            messages = [("user.7", {"type": "m", "n": n}) for n in range(3)] + [("user.8", {"type": "m", "n": 9})]
            assert await groups_send(messages, layer=layer) == 2  # the third is over capacity
            assert [(await layer.receive(live))["n"] for _ in range(2)] == [0, 1]
            assert await _nothing(layer, live)
            assert await _nothing(layer, stale)
        finally:
            await layer.flush()

    async_to_sync(scenario)()


def test_an_idle_socket_outlives_the_blocking_pop():
    """The configured layer waits out BZPOPMIN's timeout without a client-side read timeout.

    redis-py 8 reads with a 5 s socket timeout by default, the same 5 s that
    channels-redis blocks for: without the settings' socket_timeout every
    socket idle for 5 s failed with "Timeout reading" and was dropped.
    """
    from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

    async def scenario():
        layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)  # as configured, state of its own
        channel = await layer.new_channel()
        receiving = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(layer.brpop_timeout + 1.5)
        assert not receiving.done(), receiving
        await layer.send(channel, {"type": "hello"})
        assert await asyncio.wait_for(receiving, 5) == {"type": "hello"}

    async_to_sync(scenario)()


class _Socket:
    """What the hub needs of a socket: `deliver`."""

    def __init__(self, platform_id=1):
        self.platform_id = platform_id
        self.frames = []

    def deliver(self, platform_id, text, now):
        if platform_id == self.platform_id:
            self.frames.append(json.loads(text))


def _created(user_id: int, n: int, platform_id: int = 1) -> dict:
    return {"type": "notification.created", "recipient_id": user_id, "platform_id": platform_id, "payload": {"n": n}}


def test_socket_frames_reach_each_process_once_in_one_entry_and_each_socket_once():
    async def scenario():
        web1, web2 = _layer(), _layer()  # two ASGI processes
        sockets = {}
        try:
            for layer, name in [(web1, "jane_tab"), (web1, "jane_tab2"), (web2, "jane_phone"), (web1, "bob")]:
                channel = await layer.new_channel()
                sockets[name] = (layer, channel, _Socket())
                await SocketHub.join(layer, channel, sockets[name][2])
                await layer.group_add("user.2" if name == "bob" else "user.1", channel)
            entries = []
            for layer in (web1, web2):
                hub = SocketHub._hubs[(asyncio.get_running_loop(), id(layer))]
                original = hub._fan_out
                hub._fan_out = lambda entry, original=original: (entries.append(entry), original(entry))

            messages = [("user.1", _created(1, 1)), ("user.2", _created(2, 3)), ("user.3", _created(3, 4))]
            messages += [("user.1", _created(1, 2)), ("user.1", _created(1, 5, platform_id=2))]
            # jane: one frame per process per notification; bob: one; user 3 has no socket.
            assert await groups_send(messages, layer=web1) == 7

            for _ in range(100):
                if all(len(s.frames) >= (1 if name == "bob" else 2) for name, (_, _, s) in sockets.items()):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # nothing more comes
            for name in ("jane_tab", "jane_tab2", "jane_phone"):
                # In send order; the frame of another platform is not this socket's.
                assert [f["payload"]["n"] for f in sockets[name][2].frames] == [1, 2], name
                assert sockets[name][2].frames[0] == {
                    "type": "CREATED_NOTIFICATION",
                    "recipient_id": 1,
                    "payload": {"n": 1},
                }
            assert [f["payload"]["n"] for f in sockets["bob"][2].frames] == [3]
            assert len(entries) == 2  # one stream entry per process for the whole send
        finally:
            for layer, channel, _ in sockets.values():
                SocketHub.leave(layer, channel)
            await asyncio.sleep(0.1)
            await web1.flush()
            await web2.flush()

    async_to_sync(scenario)()


def test_a_hub_leaves_no_stream_behind_when_its_last_socket_goes():
    async def scenario():
        layer = _layer()
        channel = await layer.new_channel()
        await SocketHub.join(layer, channel, _Socket())
        await layer.group_add("user.1", channel)
        await groups_send([("user.1", _created(1, 1))], layer=layer)
        key = hub_key(layer, layer.client_prefix)
        hub = SocketHub._hubs[(asyncio.get_running_loop(), id(layer))]
        SocketHub.leave(layer, channel)
        await asyncio.gather(hub.task, return_exceptions=True)
        exists = await layer.connection(0).exists(key)
        await layer.flush()
        return exists

    assert async_to_sync(scenario)() == 0


class _CountingLayer(ProjectRedisLayer):
    """The project's layer, counting the connections it asks its pools for (one per round trip)."""

    connections = 0

    def connection(self, index):
        self.connections += 1
        return super().connection(index)


def test_joins_and_leaves_that_arrive_together_share_one_round_trip():
    async def scenario():
        hosts = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]
        layer = _CountingLayer(hosts=hosts, prefix="test-realtime-batch")
        channels = [await layer.new_channel() for _ in range(500)]
        groups = [(f"user.{i}", f"token.{i}") for i in range(500)]
        await asyncio.gather(*(layer.groups_add(g, c) for g, c in zip(groups, channels, strict=True)))
        joined = layer.connections
        members = [await layer.connection(0).zrange(layer._group_key(g), 0, -1) for g, _ in groups]
        # Half of them leave while the other half join again (a renewal): in call order, per socket.
        layer.connections = 0
        await asyncio.gather(
            *(
                layer.groups_discard(g, c) if i % 2 else layer.groups_add(g, c)
                for i, (g, c) in enumerate(zip(groups, channels, strict=True))
            )
        )
        changed = layer.connections
        left = [await layer.connection(0).zcard(layer._group_key(g)) for group in groups for g in group]
        await layer.flush()
        return channels, joined, members, changed, left

    channels, joined, members, changed, left = async_to_sync(scenario)()
    assert joined == 1 and changed == 1  # one pipeline for 500 sockets, each time
    assert members == [[channel.encode()] for channel in channels]
    assert left == [0 if i % 2 else 1 for i in range(500) for _ in range(2)]


# --- the consumer, through Channels' communicator and the real channel layer ----------


def _application():
    from config.asgi import application

    return application


def _socket(token: str | None, *, origin: bytes | None = None) -> WebsocketCommunicator:
    path = "/api/v1/ws/connect" + (f"?token={token}" if token is not None else "")
    headers = [(b"origin", origin)] if origin else []
    return WebsocketCommunicator(_application(), path, headers=headers)


def _token(user) -> str:
    return AuthToken.issue(user=user, name="ws")[1]


@pytest.mark.django_db(transaction=True)
def test_an_in_app_send_reaches_every_open_socket_of_the_user(platform, make_user):
    jane, bob = make_user("jane"), make_user("bob")
    jane_token, bob_token = _token(jane), _token(bob)

    async def scenario():
        tab, other = _socket(jane_token), _socket(bob_token)
        phone = _socket(jane_token, origin=b"http://localhost:3000")
        for communicator in (tab, phone, other):
            connected, _ = await communicator.connect()
            assert connected
        result = await database_sync_to_async(notification_send)(
            platform=platform,
            source="bulk:ws",
            channels=["in_app"],
            recipients=[Recipient(user_id=jane.pk)],
            message=Message(title="Title", body="Body"),
        )
        assert (result.sent, result.total_recipients) == (1, 1)
        row = await database_sync_to_async(Notification.objects.get)(source="bulk:ws")
        for communicator in (tab, phone):
            event = await communicator.receive_json_from(timeout=5)
            assert event == {
                "type": "CREATED_NOTIFICATION",
                "recipient_id": jane.pk,
                "payload": {
                    "id": str(row.id),
                    "recipient_id": jane.pk,
                    "type": "system_alert",
                    "level": "info",
                    "delivery_channel": "in_app",
                    "payload": {"headline": "Title", "message": "Body"},
                    "is_read": False,
                    "timestamp": event["payload"]["timestamp"],
                },
            }
            assert TIMESTAMP.match(event["payload"]["timestamp"])
            assert await communicator.receive_nothing(timeout=0.3)  # exactly once
        assert await other.receive_nothing(timeout=0.3)
        # Running the send again creates nothing and announces nothing.
        await database_sync_to_async(notification_send)(
            platform=platform,
            source="bulk:ws",
            channels=["in_app"],
            recipients=[Recipient(user_id=jane.pk)],
            message=Message(title="Title", body="Body"),
        )
        assert await tab.receive_nothing(timeout=0.3)
        await tab.send_json_to({"type": "PING"})
        assert await tab.receive_json_from(timeout=5) == {"type": "PONG"}
        for communicator in (tab, phone, other):
            await communicator.disconnect()

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_a_socket_on_the_redis_layer_waits_only_for_its_client(platform, make_user):
    """No channel-layer receive per socket: frames come through the hub, each socket under a name of its own."""
    from channels.layers import get_channel_layer

    jane = make_user("jane")
    token = _token(jane)

    async def scenario():
        tab, phone = _socket(token), _socket(token)
        for communicator in (tab, phone):
            connected, _ = await communicator.connect()
            assert connected
        layer = get_channel_layer()
        receiving = (layer.receive_count, len(layer.receive_buffer))
        hub = SocketHub._hubs[(asyncio.get_running_loop(), id(layer))]
        names = sorted(hub.sockets)
        members = await layer.connection(layer.consistent_hash(f"user.{jane.pk}")).zrange(
            layer._group_key(f"user.{jane.pk}"), 0, -1
        )
        await groups_send(
            [
                (
                    f"user.{jane.pk}",
                    {
                        "type": "inbox.changed",
                        "platform_id": platform.pk,
                        "platform": platform.key,
                        "ids": None,
                        "status": "read",
                        "unread": 0,
                    },
                )
            ]
        )
        frames = [await communicator.receive_json_from(timeout=5) for communicator in (tab, phone)]
        for communicator in (tab, phone):
            assert await communicator.receive_nothing(timeout=0.3)
            await communicator.disconnect()
        return receiving, names, sorted(m.decode() for m in members), frames

    receiving, names, members, frames = async_to_sync(scenario)()
    assert receiving == (0, 0)
    assert len(set(names)) == 2 and names == members
    assert all(name.startswith("specific.") and "!" in name for name in names)
    assert [frame["type"] for frame in frames] == ["INBOX_UPDATED", "INBOX_UPDATED"]


@pytest.mark.django_db(transaction=True)
def test_the_handshake_is_refused_without_a_valid_token_or_the_permission(make_user):
    jane = make_user("jane")
    good = _token(jane)
    nobody = make_user("nobody")
    no_permission = _token(nobody)
    nobody.memberships.update(is_active=False)  # no platform: no notifications.ws_connect anywhere

    async def scenario():
        for token in (None, "", "not-a-token", no_permission):
            connected, _ = await _socket(token).connect()
            assert not connected, token
        connected, _ = await _socket(good, origin=b"https://evil.example").connect()
        assert not connected
        communicator = _socket(good, origin=b"http://testserver")
        connected, _ = await communicator.connect()
        assert connected
        await communicator.disconnect()

    async_to_sync(scenario)()

"""In-app fan-out: time from the call to all rows committed and all group messages sent.

The pipeline (`notification_send(channels=["in_app"])`: bulk INSERT ... SELECT
FROM unnest, one statement-level counter trigger, the batched channels-redis
group send) against the plain way as the baseline: one `Notification.save()`
and one `channel_layer.group_send` per recipient. One user in a hundred has an
open socket (a listener registered in the channel layer, as the consumer
does); after each run every listener must have received its message exactly
once and every recipient must have exactly one sent row.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

from django.db import connection

LISTENER_EVERY = 100


def _ensure_users(count: int) -> list[int]:
    from notifications.models import User

    have = User.objects.filter(username__startswith="fanout-").count()
    if have < count:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO notifications_user (password, is_superuser, username, first_name, last_name, is_staff,
                    is_active, date_joined, email, phone_number, timezone, is_service_account)
                SELECT '', false, 'fanout-' || g, '', '', false, true, now(), 'fanout-' || g || '@example.com', '',
                    'UTC', false
                FROM generate_series(%s, %s) AS g
                """,
                [have + 1, count],
            )
    return list(User.objects.filter(username__startswith="fanout-").order_by("id").values_list("id", flat=True)[:count])


def _reset() -> None:
    with connection.cursor() as cursor:
        # TRUNCATE skips the counter triggers, so both tables go together.
        cursor.execute("TRUNCATE notifications_notification, notifications_inboxcounter")


class _Loop:
    """One event loop in a thread for the layer calls made from synchronous code."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


class _Listeners:
    """Sockets of an ASGI process: channels of another layer instance, joined to user groups.

    Each joins the process's socket hub first, as the consumer does
    (`notifications.socket_hub`): in-app frames reach a process as one stream
    entry per send and slice, not as channel messages.
    """

    def __init__(self, loop: _Loop, user_ids: list[int]):
        from channels_redis.core import RedisChannelLayer
        from django.conf import settings

        from notifications.realtime import user_group
        from notifications.socket_hub import SocketHub

        config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
        self.loop = loop
        self.layer = RedisChannelLayer(hosts=config["hosts"], prefix=config["prefix"])
        self.channels = {}
        self.frames: dict[str, list[dict]] = {}
        self.done = threading.Event()
        listeners = self

        class Socket:
            def __init__(self, channel):
                self.channel = channel

            def deliver(self, platform_id, text, now):
                frames = listeners.frames.setdefault(self.channel, [])
                frames.append(json.loads(text))
                if len(frames) == 1 and len(listeners.frames) == len(listeners.channels):
                    listeners.done.set()

            def control(self, kind):
                pass

        async def join():
            for user_id in user_ids:
                channel = await self.layer.new_channel()
                await SocketHub.join(self.layer, channel, Socket(channel))
                await self.layer.group_add(user_group(user_id), channel)
                self.channels[channel] = user_id

        loop.run(join())

    def start(self) -> None:
        """Every socket waits for its message from now on, as consumers do while the send runs."""
        self.frames.clear()
        self.done.clear()

    def received(self) -> tuple[int, int]:
        """(sockets that got exactly their own message, sockets that did not).

        A second copy would arrive right behind the first: the hub is given
        a moment more to hand over anything left after the last socket's first.
        """
        self.done.wait(timeout=60)
        time.sleep(0.5)
        good = sum(
            1
            for channel, user_id in self.channels.items()
            if len(self.frames.get(channel, ())) == 1 and self.frames[channel][0]["recipient_id"] == user_id
        )
        return good, len(self.channels) - good

    def close(self):
        from notifications.realtime import user_group
        from notifications.socket_hub import SocketHub

        async def leave():
            for channel, user_id in self.channels.items():
                await self.layer.group_discard(user_group(user_id), channel)
                SocketHub.leave(self.layer, channel)
            await self.layer.flush()

        self.loop.run(leave())


def _pipeline(platform, user_ids: list[int], source: str) -> float:
    from notifications.pipeline import Message, Recipient, notification_send

    recipients = [Recipient(user_id=pk) for pk in user_ids]
    message = Message(title="Maintenance tonight", body="The app will be unavailable 11 PM-1 AM UTC.")
    start = time.perf_counter()
    result = notification_send(
        platform=platform, source=source, channels=["in_app"], recipients=recipients, message=message
    )
    elapsed = time.perf_counter() - start
    assert result.sent == len(user_ids), result
    return elapsed


def _baseline(platform, user_ids: list[int], source: str, loop: _Loop) -> float:
    from channels.layers import get_channel_layer
    from django.utils import timezone

    from notifications.models import Notification
    from notifications.realtime import created_notification_event, groups_send_each, user_group
    from notifications.realtime_payload import created_notification_payload

    layer = get_channel_layer()
    start = time.perf_counter()
    for pk in user_ids:
        row = Notification(
            platform=platform,
            user_id=pk,
            recipient_key=f"user:{pk}",
            channel="in_app",
            source=source,
            title="Maintenance tonight",
            body="The app will be unavailable 11 PM-1 AM UTC.",
            delivery_status="sent",
            attempts=1,
            sent_at=timezone.now(),
        )
        row.save()
        # One group send per row, through the sockets' hubs as every in-app message goes.
        event = created_notification_event(created_notification_payload(row), platform_id=row.platform_id)
        loop.run(groups_send_each([user_group(pk)], lambda i, event=event: event, layer=layer))
    return time.perf_counter() - start


def _check_rows(source: str, count: int) -> dict:
    from django.db.models import Sum

    from notifications.models import InboxCounter, Notification

    rows = Notification.objects.filter(source=source, delivery_status="sent").count()
    unread = InboxCounter.objects.aggregate(total=Sum("unread"))["total"] or 0
    assert rows == count and unread == count, (rows, unread, count)
    return {"sent_rows": rows, "unread_counted": unread}


def run(*, sizes: list[int], repeat: int = 3, baseline: bool = True) -> dict:
    import os
    import statistics

    from bench import common
    from notifications.models import Platform

    platform, _ = Platform.objects.get_or_create(key="bench-fanout", defaults={"name": "Bench fan-out"})
    all_ids = _ensure_users(max(sizes))
    loop = _Loop()
    runs = []
    try:
        for size in sizes:
            ids = all_ids[:size]
            entry = {"recipients": size, "sockets": len(ids[::LISTENER_EVERY])}
            # The pipeline `repeat` times (median and best reported: the machine
            # may be shared), the baseline once: it is slow enough to be stable.
            for name, times in (("pipeline", repeat), ("baseline", 1))[: 2 if baseline else 1]:
                attempts = []
                for attempt in range(times):
                    _reset()
                    listeners = _Listeners(loop, ids[::LISTENER_EVERY])
                    listeners.start()
                    source = f"bench:fanout:{name}:{size}:{attempt}"
                    print(f"fan-out {size:>7} {name} ...", flush=True)
                    if name == "pipeline":
                        seconds = _pipeline(platform, ids, source)
                    else:
                        seconds = _baseline(platform, ids, source, loop)
                    good, bad = listeners.received()
                    listeners.close()
                    attempts.append(
                        {
                            "seconds": round(seconds, 3),
                            "rows_per_second": round(size / seconds),
                            "sockets_received_once": good,
                            "sockets_missed_or_duplicated": bad,
                            "load_average_1m": round(os.getloadavg()[0], 2),
                            **_check_rows(source, size),
                        }
                    )
                    print(f"  {seconds:.3f} s, sockets ok {good}, bad {bad}", flush=True)
                seconds = [a["seconds"] for a in attempts]
                entry[name] = {
                    "median_seconds": round(statistics.median(seconds), 3),
                    "best_seconds": min(seconds),
                    "runs": attempts,
                }
            if baseline:
                entry["speedup_median"] = round(
                    entry["baseline"]["median_seconds"] / entry["pipeline"]["median_seconds"], 1
                )
            runs.append(entry)
    finally:
        loop.close()
        _reset()
    path = common.write(
        "fanout",
        {
            "what": "in-app fan-out: call to all rows committed and all group messages sent",
            "baseline": "per-row Notification.save() + one group send per row" if baseline else "not run",
            "sockets": f"one user in {LISTENER_EVERY} has an open socket (a channel in a second layer instance)",
            "runs": runs,
        },
    )
    print(f"wrote {path}")
    return {"runs": runs}

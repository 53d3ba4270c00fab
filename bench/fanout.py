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
    """Sockets of an ASGI process: channels of another layer instance, joined to user groups."""

    def __init__(self, loop: _Loop, user_ids: list[int]):
        from channels_redis.core import RedisChannelLayer
        from django.conf import settings

        from notifications.realtime import user_group

        config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
        self.loop = loop
        self.layer = RedisChannelLayer(hosts=config["hosts"], prefix=config["prefix"])
        self.channels = {}

        async def join():
            for user_id in user_ids:
                channel = await self.layer.new_channel()
                await self.layer.group_add(user_group(user_id), channel)
                self.channels[channel] = user_id

        loop.run(join())

    def start(self) -> None:
        """Every socket waits for its message from now on, as consumers do while the send runs.

        (Waiting only afterwards would lose the baseline's early messages to
        channels-redis's 60 s message expiry.)
        """

        async def gather():
            async def one(channel):
                return channel, await self.layer.receive(channel)

            return await asyncio.gather(*(one(c) for c in self.channels))

        self.pending = asyncio.run_coroutine_threadsafe(gather(), self.loop.loop)

    def received(self) -> tuple[int, int]:
        """(sockets that got exactly their own message, sockets that did not).

        Then nothing may be left, neither in Redis nor in the layer's buffers:
        a second copy would be there. (Cancelling a channels-redis receive
        mid-pop can lose a message, so duplicates are looked for, not waited for.)
        """
        try:
            results = self.pending.result(timeout=60)
        except TimeoutError:
            self.pending.cancel()
            return 0, len(self.channels)
        good = sum(1 for channel, message in results if message["recipient_id"] == self.channels[channel])

        async def left():
            key = self.layer.prefix + self.layer.non_local_name(next(iter(self.channels)))
            queued = await self.layer.connection(0).zcard(key)
            return queued + sum(queue.qsize() for queue in self.layer.receive_buffer.values())

        return good, len(self.channels) - good + self.loop.run(left())

    def close(self):
        from notifications.realtime import user_group

        async def leave():
            for channel, user_id in self.channels.items():
                await self.layer.group_discard(user_group(user_id), channel)
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
    from notifications.realtime import created_notification_event, user_group
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
        loop.run(
            layer.group_send(
                user_group(pk),
                created_notification_event(created_notification_payload(row), platform_id=row.platform_id),
            )
        )
    return time.perf_counter() - start


def _check_rows(source: str, count: int) -> dict:
    from django.db.models import Sum

    from notifications.models import InboxCounter, Notification

    rows = Notification.objects.filter(source=source, delivery_status="sent").count()
    unread = InboxCounter.objects.aggregate(total=Sum("unread"))["total"] or 0
    assert rows == count and unread == count, (rows, unread, count)
    return {"sent_rows": rows, "unread_counted": unread}


def run(*, sizes: list[int], repeat: int = 3) -> dict:
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
            for name, times in (("pipeline", repeat), ("baseline", 1)):
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
            "baseline": "per-row Notification.save() + per-user channel_layer.group_send",
            "sockets": f"one user in {LISTENER_EVERY} has an open socket (a channel in a second layer instance)",
            "runs": runs,
        },
    )
    print(f"wrote {path}")
    return {"runs": runs}

"""From lifecycle signals to webhook messages, cheaply.

`subscribed` answers the core's `lifecycle.wanted(...)` from a per-process
cache of which event types each platform's active endpoints subscribe to
(kept `WEBHOOK_SUBSCRIPTION_CACHE_SECONDS`, dropped at once in this process
when an endpoint changes), so a fan-out on a platform without endpoints builds
no payloads and writes nothing.

The listener turns each announced event into one message per subscribed
endpoint. Inside a transaction (every `lifecycle.announce_many`) messages are
gathered and written after commit with one bulk INSERT per batch, leased for
their task, and handed to Celery in chunks (`delivery.messages_enqueue`); the
sweep is the safety net for chunks whose task is lost. Events in the bulk form
(ids of notification rows: a fan-out, a dispatch batch) cost the sender one
task per 10,000 ids: the task writes their messages with one
INSERT ... SELECT from the rows.
"""

from __future__ import annotations

import logging
import threading
import uuid
from functools import partial

from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from notifications import lifecycle
from notifications.models import Notification
from webhooks import delivery
from webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.subscriptions import subscribed, subscriptions_for, subscriptions_forget

logger = logging.getLogger(__name__)

EVENT_TYPES = tuple(signal.name for signal in lifecycle.ALL)
__all__ = ["EVENT_TYPES", "connect", "events_record", "subscribed", "subscriptions_forget"]

_local = threading.local()


def _message_rows(events: list[tuple[int, str, dict]], now, claimed_until) -> list[WebhookMessage]:
    rows = []
    for platform_id, event_type, payload in events:
        for endpoint_id in subscriptions_for(platform_id).get(event_type, ()):
            rows.append(
                WebhookMessage(
                    id=uuid.uuid4(),
                    platform_id=platform_id,
                    endpoint_id=endpoint_id,
                    event_type=event_type,
                    payload=payload,
                    status=MessageStatus.PENDING,
                    next_attempt_at=claimed_until,
                    claimed_until=claimed_until,
                    created_at=now,
                )
            )
    return rows


def events_record(events: list[tuple[int, str, dict]]) -> int:
    """Write the messages these events owe, in bulk, and queue them; returns how many were written."""
    now = timezone.now()
    # Written leased for the task they are handed to (which claims them); if it is lost, the sweep
    # takes them after the lease.
    claimed_until = now + delivery.lease()
    rows = _message_rows(events, now, claimed_until)
    if not rows:
        return 0
    try:
        WebhookMessage.objects.bulk_create(rows, batch_size=1000)
    except Exception:
        # An endpoint deleted since the cache was filled (its id is gone): write what still exists.
        logger.warning("writing webhook messages failed; retrying without stale endpoints", exc_info=True)
        subscriptions_forget()
        live = set(WebhookEndpoint.objects.filter(pk__in={r.endpoint_id for r in rows}).values_list("pk", flat=True))
        rows = [r for r in rows if r.endpoint_id in live]
        WebhookMessage.objects.bulk_create(rows, batch_size=1000)
    # By endpoint, so a task's chunk goes to as few endpoints (connections) as possible.
    delivery.messages_enqueue(ids=[str(r.id) for r in sorted(rows, key=lambda r: r.endpoint_id)])
    return len(rows)


def _flush(buffer: list) -> None:
    if getattr(_local, "buffer", None) is buffer:
        _local.buffer = None
    try:
        events_record(buffer)
    except Exception:
        logger.exception("recording %s webhook events failed", len(buffer))


def _buffer_registered(buffer: list) -> bool:
    # A rolled-back transaction drops its on-commit callbacks: then this buffer is
    # orphaned (its events never happened) and a new one starts.
    return any(getattr(entry[1], "args", (None,))[0] is buffer for entry in connection.run_on_commit)


# Notification ids one recording task takes (the write path announces a chunk of rows at once).
RECORD_CHUNK = 10_000


def notification_events_enqueue(*, platform_id: int, event_type: str, notification_ids: list) -> None:
    """The bulk form: hand the ids to a task that writes the messages from the rows, off the sender's path."""
    queue = delivery.queue()
    for start in range(0, len(notification_ids), RECORD_CHUNK):
        chunk = [str(pk) for pk in notification_ids[start : start + RECORD_CHUNK]]
        if queue is not None:
            transaction.on_commit(partial(queue.record, platform_id, event_type, chunk))
        else:  # no Celery: write them here, once the sender's transaction commits
            record = partial(notification_events_record, platform_id=platform_id, event_type=event_type)
            transaction.on_commit(partial(record, notification_ids=chunk))


def notification_events_record(*, platform_id: int, event_type: str, notification_ids: list[str]) -> int:
    """Write one message per (row among `notification_ids`, subscribed endpoint), claimed, and queue them.

    On PostgreSQL one INSERT ... SELECT builds the payloads from the rows
    (`lifecycle.notification_payload`'s shape, in SQL); elsewhere rows are read
    and written in Python. The event's time is the row's `created_at` for
    `notification.created`, now for the others.
    """
    endpoints = subscriptions_for(platform_id).get(event_type, [])
    if not endpoints or not notification_ids:
        return 0
    now = timezone.now()
    claimed_until = now + delivery.lease()
    if connection.vendor == "postgresql":
        ids = _record_postgresql(platform_id, event_type, notification_ids, endpoints, now, claimed_until)
    else:
        ids = _record_generic(platform_id, event_type, notification_ids, endpoints, now, claimed_until)
    delivery.messages_enqueue(ids=ids)
    return len(ids)


def _record_postgresql(platform_id, event_type, notification_ids, endpoints, now, claimed_until) -> list[str]:
    fields = lifecycle.payload_fields(event_type)
    parts = ["'notification_id', n.id::text"]
    for name in fields:
        column = {"user_id": "n.user_id::text", "error": "left(n.error, 300)"}.get(name, f"n.{name}")
        parts.append(f"'{name}', {column}")
    created = "n.created_at" if event_type == lifecycle.notification_created.name else "%(now)s"
    query = f"""
        INSERT INTO {WebhookMessage._meta.db_table}
            (id, platform_id, endpoint_id, event_type, payload, status, attempts, next_attempt_at,
             claimed_until, last_status_code, last_error, delivered_at, created_at)
        SELECT gen_random_uuid(), n.platform_id, e.id, %(event_type)s, jsonb_build_object({", ".join(parts)}),
               %(pending)s, 0, %(until)s, %(until)s, NULL, '', NULL, {created}
        FROM {Notification._meta.db_table} n
        CROSS JOIN unnest(%(endpoints)s::bigint[]) AS e(id)
        WHERE n.id = ANY(%(ids)s::uuid[]) AND n.platform_id = %(platform_id)s
          AND e.id IN (SELECT id FROM {WebhookEndpoint._meta.db_table} WHERE platform_id = %(platform_id)s)
        RETURNING id, endpoint_id
    """
    params = {
        "event_type": event_type,
        "pending": MessageStatus.PENDING,
        "until": claimed_until,
        "now": now,
        "endpoints": list(endpoints),
        "ids": list(notification_ids),
        "platform_id": platform_id,
    }
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        # By endpoint, so a task's chunk goes to as few endpoints (connections) as possible.
        return [str(pk) for pk, _endpoint in sorted(cursor.fetchall(), key=lambda row: row[1])]


def _record_generic(platform_id, event_type, notification_ids, endpoints, now, claimed_until) -> list[str]:
    fields = lifecycle.payload_fields(event_type)
    rows = Notification.objects.filter(pk__in=notification_ids, platform_id=platform_id).values(
        "id", "created_at", *fields
    )
    live = set(WebhookEndpoint.objects.filter(pk__in=endpoints, platform_id=platform_id).values_list("pk", flat=True))
    created = event_type == lifecycle.notification_created.name
    messages = [
        WebhookMessage(
            id=uuid.uuid4(),
            platform_id=platform_id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            payload=lifecycle.notification_payload(event_type, row),
            status=MessageStatus.PENDING,
            next_attempt_at=claimed_until,
            claimed_until=claimed_until,
            created_at=row["created_at"] if created else now,
        )
        for row in rows
        for endpoint_id in endpoints
        if endpoint_id in live
    ]
    WebhookMessage.objects.bulk_create(messages, batch_size=1000)
    return [str(m.id) for m in sorted(messages, key=lambda m: m.endpoint_id)]


def on_event(sender, *, signal, platform_id: int, payload: dict | None, notification_ids=None, **kwargs) -> None:
    """The lifecycle listener: buffer until commit inside a transaction, else write at once.

    The bulk form (`notification_ids`) goes to a recording task instead.
    """
    if not subscribed(signal.name, platform_id):
        return
    if notification_ids is not None:
        notification_events_enqueue(platform_id=platform_id, event_type=signal.name, notification_ids=notification_ids)
        return
    event = (platform_id, signal.name, payload)
    if not connection.in_atomic_block:
        events_record([event])
        return
    buffer = getattr(_local, "buffer", None)
    if buffer is None or not _buffer_registered(buffer):
        buffer = []
        _local.buffer = buffer
        transaction.on_commit(partial(_flush, buffer))
    buffer.append(event)


def _endpoint_changed(sender, instance: WebhookEndpoint, **kwargs) -> None:
    subscriptions_forget(instance.platform_id)


def connect() -> None:
    for signal in lifecycle.ALL:
        signal.connect(on_event, dispatch_uid=f"webhooks:{signal.name}")
    post_save.connect(_endpoint_changed, sender=WebhookEndpoint, dispatch_uid="webhooks:endpoint-saved")
    post_delete.connect(_endpoint_changed, sender=WebhookEndpoint, dispatch_uid="webhooks:endpoint-deleted")

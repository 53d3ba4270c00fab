"""Celery tasks of the webhooks app: they take message ids and call `delivery`."""

from __future__ import annotations

from celery import shared_task

from webhooks import delivery, events


@shared_task(ignore_result=True, acks_late=True)
def deliver_webhook_messages(ids: list[str]) -> int:
    """One chunk of handed-over messages, one attempt each. Safe to run twice: the second copy finds
    them claimed by the first (or delivered) and skips them."""
    return delivery.messages_deliver(ids=ids)


@shared_task(ignore_result=True, acks_late=True)
def record_notification_events(platform_id: int, event_type: str, notification_ids: list[str]) -> int:
    """Write the messages a bulk event owes (one INSERT ... SELECT from the rows) and queue their delivery."""
    return events.notification_events_record(
        platform_id=platform_id, event_type=event_type, notification_ids=notification_ids
    )


# Looked up when called (tests may replace `.delay`).
DELIVERY_QUEUE = delivery.Queue(
    enqueue=lambda ids: deliver_webhook_messages.delay(ids),
    record=lambda platform_id, event_type, ids: record_notification_events.delay(platform_id, event_type, ids),
)

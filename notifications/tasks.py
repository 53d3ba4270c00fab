"""Celery tasks of the core: they take ids and call services."""

from __future__ import annotations

from celery import shared_task

from notifications import scheduler


@shared_task(ignore_result=True)
def sweep_due_work() -> dict:
    return scheduler.sweep(follow_up=True)


@shared_task(ignore_result=True, acks_late=True)
def run_due_item(source: str, item_id) -> None:
    scheduler.SOURCES[source].run(item_id=item_id)


@shared_task(ignore_result=True, acks_late=True)
def run_due_items(source: str, item_ids: list) -> None:
    """A batch of one source's claimed items; redelivered whole if the worker dies (items are idempotent)."""
    scheduler.SOURCES[source].run_many(item_ids=item_ids)


@shared_task(ignore_result=True)
def purge_idempotency_keys() -> int:
    """Hourly: expired Idempotency-Key records, and compose-form uploads never confirmed."""
    from notifications.bulk_scheduled.services import compose_uploads_purge
    from notifications.models import IdempotencyKey

    return IdempotencyKey.purge_expired() + compose_uploads_purge()


@shared_task(ignore_result=True)
def purge_inbox_tokens() -> int:
    from notifications.inbox_tokens import inbox_tokens_purge

    return inbox_tokens_purge()


@shared_task(ignore_result=True, acks_late=True)
def dispatch_chunk(source: str, channel: str, ids: list[str]) -> int:
    """Send one chunk of a large send. Safe to run twice: rows are claimed under a lease."""
    from notifications.services import deliveries_dispatch_ids

    return deliveries_dispatch_ids(channel=channel, ids=ids, source=source)

"""Celery tasks of the core: they take ids and call services.

This is the one module of the core that knows Celery: the scheduler and the
pipeline are handed `QUEUE`'s functions at start-up (`NotificationsConfig.ready`).
"""

from __future__ import annotations

from celery import current_app, shared_task

from notifications import scheduler
from notifications.bulk_scheduled.compose import compose_uploads_purge
from notifications.inbox_tokens import inbox_tokens_purge
from notifications.models import IdempotencyKey
from notifications.pipeline import dispatch, policies


@shared_task(ignore_result=True)
def sweep_due_work() -> dict:
    return scheduler.sweep(follow_up=True, enqueue=SCHEDULER_QUEUE)


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
    return IdempotencyKey.purge_expired() + compose_uploads_purge()


@shared_task(ignore_result=True)
def purge_delivery_plans() -> int:
    """Hourly: the fallback and escalation plans of sends past DELIVERY_PLAN_RETENTION_DAYS."""
    return policies.delivery_plans_purge()


@shared_task(ignore_result=True)
def purge_inbox_tokens() -> int:
    return inbox_tokens_purge()


@shared_task(ignore_result=True, acks_late=True)
def dispatch_range(sources: list[str], channel: str, after: str | None = None, upto: str | None = None) -> int:
    """Send one range of a large send's pending rows. Safe to run twice: rows are claimed under a lease."""
    return dispatch.deliveries_dispatch_range(sources=sources, channel=channel, after=after, upto=upto)


@shared_task(ignore_result=True, acks_late=True)
def dispatch_chunk(source: str, channel: str, ids: list[str]) -> int:
    """Send one chunk of a large send: what earlier versions queued (tasks still in the broker after an upgrade)."""
    return dispatch.deliveries_dispatch_ids(channel=channel, ids=ids, source=source)


def runs_inline() -> bool:
    return bool(current_app.conf.task_always_eager)


# The tasks are looked up when called (tests replace `.delay` on them).
SCHEDULER_QUEUE = scheduler.Enqueue(
    item=lambda source, item_id: run_due_item.delay(source, item_id),
    items=lambda source, item_ids: run_due_items.delay(source, item_ids),
    sweep_at=lambda at: sweep_due_work.apply_async(eta=at),
    runs_inline=runs_inline,
)
DISPATCH_QUEUE = dispatch.Queue(
    enqueue=lambda sources, channel, after, upto: dispatch_range.delay(sources, channel, after, upto),
    runs_inline=runs_inline,
)

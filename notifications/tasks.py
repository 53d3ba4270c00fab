"""Celery tasks of the core: they take ids and call services."""

from __future__ import annotations

from celery import shared_task

from notifications import scheduler


@shared_task(ignore_result=True)
def sweep_due_work() -> dict:
    return scheduler.sweep()


@shared_task(ignore_result=True, acks_late=True)
def run_due_item(source: str, item_id) -> None:
    scheduler.SOURCES[source].run(item_id=item_id)


@shared_task(ignore_result=True)
def purge_idempotency_keys() -> int:
    from notifications.api.idempotency import idempotency_keys_purge

    return idempotency_keys_purge()

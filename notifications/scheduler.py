"""Due work: one sweep, many sources.

Scheduled jobs, builds with `process_on`, alert `notifyAt` and periodic configs
are all "rows that become due". Each app registers a `DueWorkSource` in its
`AppConfig.ready()`; beat runs `sweep` about every second; `sweep` asks every
source to claim its due rows (`SELECT ... FOR UPDATE SKIP LOCKED`, then a
lease) and queues one Celery task per claimed row, or, for a source with
`run_many`, one task per batch of claimed rows (less overhead per item when
many fall due at once). The sweep has a Celery queue of its own, so it is never
stuck behind the items it queued. The core never imports the
apps: they come to it.

A source's `run` must be idempotent: a worker that dies mid-item leaves the
lease to run out, the next sweep claims the item again, and the delivery
pipeline's unique keys make sure nobody gets a second copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class DueWorkSource:
    name: str
    # claim(now=, limit=, lease=) -> ids it claimed (and leased) for this sweep
    claim: Callable[..., list]
    # run(item_id=) processes one claimed item to completion (or until cancelled)
    run: Callable[..., None]
    # run_many(item_ids=) runs several claimed items in one task, each as `run` would
    run_many: Callable[..., None] | None = None


SOURCES: dict[str, DueWorkSource] = {}


def register(source: DueWorkSource) -> None:
    SOURCES[source.name] = source


def claim_rows(
    queryset: QuerySet, *, limit: int, updates: Callable[[], dict] | dict, order_by: tuple[str, ...] = ("pk",)
) -> list:
    """Lock up to `limit` rows of `queryset` that no one else holds and apply `updates`.

    Other sweeps running at the same moment skip the locked rows instead of
    waiting for them, so N workers claim N disjoint sets.
    """
    with transaction.atomic():
        ids = list(
            queryset.select_for_update(skip_locked=True).order_by(*order_by).values_list("pk", flat=True)[:limit]
        )
        if ids:
            queryset.model.objects.filter(pk__in=ids).update(**(updates() if callable(updates) else updates))
    return ids


def sweep(*, now: datetime | None = None, limit: int = 500, lease: timedelta = DEFAULT_LEASE) -> dict[str, int]:
    """Claim what is due in every source and queue it; returns counts per source."""
    from notifications.tasks import run_due_item, run_due_items

    batch = max(1, getattr(settings, "DUE_WORK_BATCH_SIZE", 25))
    now = now or timezone.now()
    counts = {}
    for source in list(SOURCES.values()):
        try:
            ids = source.claim(now=now, limit=limit, lease=lease)
        except Exception:
            # One broken source must not stop the others from being swept.
            logger.exception("claiming due work from %s failed", source.name)
            continue
        if source.run_many is not None:
            for start in range(0, len(ids), batch):
                run_due_items.delay(source.name, ids[start : start + batch])
        else:
            for item_id in ids:
                run_due_item.delay(source.name, item_id)
        counts[source.name] = len(ids)
    return counts

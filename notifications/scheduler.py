"""Due work: one sweep, many sources.

Scheduled jobs, builds with `process_on`, alert `notifyAt` and periodic configs
are all "rows that become due". Each app registers a `DueWorkSource` in its
`AppConfig.ready()`; beat runs `sweep` about every second; `sweep` asks every
source to claim its due rows (`SELECT ... FOR UPDATE SKIP LOCKED`, then a
lease) and hands each claimed row to the queue, or, for a source with
`run_many`, each batch of claimed rows (less overhead per item when many fall
due at once). A source with `next_due` lets the sweep queue one more
sweep for the moment its next item falls due, between two beat ticks. The
sweep has a Celery queue of its own, so it is never stuck behind the items it
queued. The core never imports the apps: they come to it. Nor does this
module know Celery: `notifications.tasks` hands it an `Enqueue` (registered
in the core's AppConfig.ready(), or passed to `sweep`).

A source's `run` must be idempotent: a worker that dies mid-item leaves the
lease to run out, the next sweep claims the item again, and the delivery
pipeline's unique keys make sure nobody gets a second copy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
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
    # next_due(after=, until=) -> when the first item falls due in (after, until], or None
    next_due: Callable[..., datetime | None] | None = None
    # oldest_due(now=) -> since when the longest-waiting item that is due and
    # held by no one has been due (its due time, or its dead lease's end), or None
    oldest_due: Callable[..., datetime | None] | None = None


SOURCES: dict[str, DueWorkSource] = {}


def register(source: DueWorkSource) -> None:
    SOURCES[source.name] = source


@dataclass(frozen=True)
class Enqueue:
    """How the sweep hands work on: one function per kind of task."""

    # item(source name, item id): run one claimed item
    item: Callable[[str, object], None]
    # items(source name, [item ids]): run a batch of a `run_many` source's claimed items
    items: Callable[[str, list], None]
    # sweep_at(moment): one more sweep at that moment
    sweep_at: Callable[[datetime], None]
    # True when queued work runs at once in the caller (eager Celery): nothing waits for a moment
    runs_inline: Callable[[], bool]


_ENQUEUE: Enqueue | None = None


def use_enqueue(enqueue: Enqueue) -> None:
    """Registered by the core's AppConfig.ready(): what `sweep` uses when it is handed none."""
    global _ENQUEUE
    _ENQUEUE = enqueue


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


def first_due(queryset: QuerySet, field: str, *, after: datetime, until: datetime) -> datetime | None:
    """The earliest `field` in (after, until] among `queryset`: a source's `next_due`, one index probe."""
    return (
        queryset.filter(**{f"{field}__gt": after, f"{field}__lte": until})
        .order_by(field)
        .values_list(field, flat=True)
        .first()
    )


def sweep(
    *,
    now: datetime | None = None,
    limit: int = 500,
    lease: timedelta | None = None,
    rounds: int = 20,
    follow_up: bool = False,
    enqueue: Enqueue | None = None,
) -> dict[str, int]:
    """Claim what is due in every source and queue it; returns counts per source.

    A source is claimed from again while a claim comes back full (up to
    `rounds` claims), so a thousand jobs due in the same second all go out in
    this sweep, not over the next few. With `follow_up` (the beat task), a
    sweep that sees an item falling due before the next tick queues one more
    sweep for that moment: an item is picked up when it falls due, not up to
    an interval later.
    """
    enqueue = enqueue or _ENQUEUE
    if enqueue is None:
        raise RuntimeError("the scheduler has no Enqueue: notifications.apps registers one at start-up")
    batch = max(1, getattr(settings, "DUE_WORK_BATCH_SIZE", 100))
    now = now or timezone.now()
    if lease is None:
        # How long a queued item stays with the task it went to; a lost task's items are due again after it.
        seconds = getattr(settings, "DUE_WORK_LEASE_SECONDS", None)
        lease = timedelta(seconds=seconds) if seconds else DEFAULT_LEASE
    counts = {}
    for source in list(SOURCES.values()):
        counts[source.name] = 0
        for _ in range(rounds):
            try:
                ids = source.claim(now=now, limit=limit, lease=lease)
            except Exception:
                # One broken source must not stop the others from being swept.
                logger.exception("claiming due work from %s failed", source.name)
                break
            if source.run_many is not None:
                for start in range(0, len(ids), batch):
                    enqueue.items(source.name, ids[start : start + batch])
            else:
                for item_id in ids:
                    enqueue.item(source.name, item_id)
            counts[source.name] += len(ids)
            if len(ids) < limit:
                break
    sweep_completed()
    if follow_up:
        try:
            _follow_up(now, enqueue)
        except Exception:
            # Without it the next beat tick still picks the work up, a little later.
            logger.exception("queueing the follow-up sweep failed")
    return counts


# When the last sweep finished (epoch seconds), in the shared cache: /healthz and
# /metrics of any web process read it, whichever worker swept.
LAST_SWEEP_KEY = "due-work:last-sweep"


def sweep_completed() -> None:
    try:
        cache.set(LAST_SWEEP_KEY, time.time(), timeout=None)
    except Exception:
        # The sweep itself went through; only its health report is late.
        logger.exception("recording the sweep time failed")


def last_sweep_at() -> float | None:
    """Epoch seconds of the last completed sweep, or None if none was recorded."""
    value = cache.get(LAST_SWEEP_KEY)
    return float(value) if value is not None else None


def oldest_due(*, now: datetime) -> dict[str, datetime | None]:
    """Per source, since when its longest-waiting due and unclaimed item has been due.

    Sweeping claims everything due every second, so an old value here means
    no sweep runs (no beat, or no worker consuming the `sweep` queue) or it
    cannot keep up. Sources without `oldest_due` are left out.
    """
    return {
        source.name: source.oldest_due(now=now) for source in list(SOURCES.values()) if source.oldest_due is not None
    }


def oldest(queryset: QuerySet, field: str) -> datetime | None:
    """The smallest `field` of `queryset` (one probe of the index a source's claim uses)."""
    return queryset.order_by(field).values_list(field, flat=True).first()


def _follow_up(now: datetime, enqueue: Enqueue) -> None:
    """Queue a sweep for the moment the next item falls due, if that is before the next tick."""
    if enqueue.runs_inline():
        return  # nothing waits for a moment in eager mode
    until = now + timedelta(seconds=float(getattr(settings, "DUE_WORK_SWEEP_INTERVAL_SECONDS", 1.0)))
    upcoming = []
    for source in list(SOURCES.values()):
        if source.next_due is None:
            continue
        try:
            due = source.next_due(after=now, until=until)
        except Exception:
            logger.exception("reading the next due time of %s failed", source.name)
            continue
        if due is not None:
            upcoming.append(due)
    if not upcoming:
        return
    at = min(upcoming)
    # Every sweep that sees the same moment coming would queue a sweep for it:
    # the first one to get here does (an atomic add in the shared cache).
    if cache.add(f"due-work:sweep-at:{at.timestamp():.6f}", 1, timeout=60):
        enqueue.sweep_at(at)

"""Dispatch: claim pending rows under a lease, hand them to the channel backend, record each result.

Rows are claimed under a lease (`claimed_until`) a batch at a time: the next
ids in the pending-rows index's order are locked (`SELECT ... FOR UPDATE SKIP
LOCKED`, planned as that index walk) and leased by one `UPDATE ... RETURNING`,
in one transaction. Each claim starts after the last, so neither the rows
already handled nor the dead index entries a large send leaves until vacuum
are walked again; the batches are handed to the backend. Each result is recorded as soon as the
backend yields it (`BaseBackend.send_groups`), so a crash loses at most the
delivery in flight, and a re-run never re-sends a `sent` row. Transient
failures go back to `pending` with a backoff (`retry.DELIVERIES`).

The backend is a `failover.ProviderRouter` over the channel's configured
providers: with one, it only names the provider on each result; with several,
it routes each delivery past providers whose circuit is open and moves the
deliveries a provider definitely refused to the next one (see
`pipeline/failover.py`). A failed-over row is recorded with `rule=failover`
and the provider that answered it.

A failure whose provider refused the address itself (`Result.address_refused`:
an unknown mailbox, an invalid or blacklisted number) also puts the address on
its platform's suppression list, one insert per group of results
(`suppressions.refusals_suppress`), so later sends skip it.

Small sends are dispatched in the caller; large ones are cut into a few ranges
of row ids, one dispatcher each, handed to the queue the core registers at
start-up (`use_queue`; `notifications.tasks` puts them on Celery) after the
rows are committed (see `_ranges`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import connection, transaction
from django.db.models import JSONField, Q, prefetch_related_objects
from django.utils import timezone

import notifications.pipeline.retry as retry
import notifications.pipeline.sql as sql
import notifications.pipeline.tuning as tuning
from notifications import lifecycle, metrics, suppressions
from notifications.backends import providers
from notifications.backends.base import Result
from notifications.channels import settings_key
from notifications.models import DeliveryRule, DeliveryStatus, Notification, Platform
from notifications.pipeline.build import FAILED, PENDING, SENT
from notifications.pipeline.failover import ProviderRouter
from notifications.pipeline.fallback import fallback_after_failures
from notifications.pipeline.parts import Outcome, RunningCheck, StopCheck

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Queue:
    """Where the dispatchers of a large send go to run on workers."""

    # enqueue(sources, channel, after, upto): one dispatcher for the send's pending
    # rows with ids in (after, upto] (None: open), as strings.
    enqueue: Callable[[list[str], str, str | None, str | None], None]
    # True when queued work runs at once in the caller (eager Celery in tests).
    runs_inline: Callable[[], bool]


_QUEUE: Queue | None = None


def use_queue(queue: Queue) -> None:
    """Registered by the core's AppConfig.ready(); without one every send is dispatched in place."""
    global _QUEUE
    _QUEUE = queue


def of_sources(qs, sources: Sequence[str]):
    """Rows of the given sources (a plain equality for one, which every index serves best)."""
    return qs.filter(source=sources[0]) if len(sources) == 1 else qs.filter(source__in=sources)


def unleased(now: datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


# Rules that hold a row until its `next_attempt_at` (`rules.Decision.defer`). Rows
# other rules wrote (a fallback, an escalation) go at once like any first try.
HOLDING_RULES = (DeliveryRule.QUIET_HOURS, DeliveryRule.FREQUENCY_CAP)


def _free(now: datetime) -> Q:
    """Pending rows nobody holds, whose first try or retry is due.

    A first try is due at once (its `next_attempt_at` is only the writer's
    lease, for the sweep), unless a delivery rule deferred the row: then its
    `next_attempt_at` is the rule's time (see `pipeline.rules`), and neither the
    send's dispatcher nor the sweep takes it earlier.
    """
    due = (Q(attempts=0) & ~Q(rule__in=HOLDING_RULES)) | Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return unleased(now) & due


def _claim(
    *,
    channel: str,
    limit: int,
    sources: Sequence[str] | None = None,
    ids=None,
    ticket=None,
    after=None,
    upto=None,
    platforms: dict[int, Platform] | None = None,
) -> list[Notification]:
    """Claim up to `limit` pending rows under a lease, in one transaction; returns them in id order.

    The next ids are locked with `SELECT ... FOR UPDATE SKIP LOCKED LIMIT n`
    and leased by `UPDATE ... RETURNING`: the rows a concurrent dispatcher is
    claiming are skipped, and the claimed rows come back with the lease (no
    second read; see `_claim_postgresql`). `ticket` is
    the lease end the sweep stamped on rows it queued for one task: that task
    may take them although they look held. `after` / `upto`: only rows with a
    greater id / an id up to this one (a dispatcher moving through its range
    of a send in id order). The rows' platforms come from `platforms` (one
    read per platform and dispatcher, not a join per row); their users are not
    read (backends need only `user_id`; a fallback reads the few it needs).
    """
    now = timezone.now()
    until = now + tuning.lease()
    condition = _free(now)
    if ticket is not None:
        condition |= Q(claimed_until=ticket)
    qs = Notification.objects.filter(channel=channel, delivery_status=DeliveryStatus.PENDING).filter(condition)
    if sources is not None:
        qs = of_sources(qs, sources)
    if ids is not None:
        qs = qs.filter(id__in=ids)
    if after is not None:
        qs = qs.filter(id__gt=after)
    if upto is not None:
        qs = qs.filter(id__lte=upto)
    claim = _claim_postgresql if connection.vendor == "postgresql" else _claim_portable
    claimed = claim(qs, limit=limit, until=until)
    if claimed:
        _platforms_attach(claimed, {} if platforms is None else platforms)
    return claimed


def _claim_postgresql(qs, *, limit: int, until) -> list[Notification]:
    """The claim: lock the next ids in the pending index's order, lease them, build the rows from RETURNING.

    A send's rows are new to the planner's statistics, so it expects a few
    hundred of them, and rather than walking the pending-rows index in id
    order up to `limit`, it read every pending row left in the dispatcher's
    range (with a bitmap scan, or through the due index) and sorted them:
    each claim re-read the rest of its range, 17 ms for 500 of 17,000 rows
    against 3 ms for the walk. The walk is what a claim means, so the lock
    is planned with sorts and bitmap scans off; the settings are put back
    before the lease, whose statement fires the inbox counters' trigger.
    """
    select, params = qs.order_by("id").values_list("id", flat=True)[:limit].query.sql_with_params()
    table = connection.ops.quote_name(Notification._meta.db_table)
    fields = _returned_fields()
    columns = ", ".join(f"n.{connection.ops.quote_name(f.column)}" for f in fields)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off")
        cursor.execute(f"{select} FOR UPDATE SKIP LOCKED", params)
        ids = [row[0] for row in cursor.fetchall()]
        cursor.execute("SET LOCAL enable_bitmapscan TO DEFAULT; SET LOCAL enable_sort TO DEFAULT")
        if not ids:
            return []
        # While held, the sweep leaves the rows alone; once the lease ends they are due again.
        cursor.execute(
            f"UPDATE {table} AS n SET claimed_until = %s, next_attempt_at = %s "
            f"WHERE n.id = ANY(%s) RETURNING {columns}",
            [until, until, ids],
        )
        returned = cursor.fetchall()
    return sorted(_rows(fields, returned, claimed_until=until, next_attempt_at=until), key=lambda row: row.pk)


def _claim_portable(qs, *, limit: int, until) -> list[Notification]:
    """The claim on other databases (SQLite): ids, lease, then the rows, read by the ORM.

    SQLite runs one writer at a time (IMMEDIATE transactions), so the ids read
    in the transaction are not claimed by anyone else before the update.
    """
    with transaction.atomic():
        ids = list(qs.select_for_update(skip_locked=True).order_by("id").values_list("id", flat=True)[:limit])
        if not ids:
            return []
        # While held, the sweep leaves the rows alone; once the lease ends they are due again.
        Notification.objects.filter(id__in=ids).update(claimed_until=until, next_attempt_at=until)
    return list(Notification.objects.filter(id__in=ids).order_by("id"))


def _returned_fields() -> list:
    """The columns a claim reads back: all but the two it has just set."""
    return [f for f in Notification._meta.concrete_fields if f.attname not in ("claimed_until", "next_attempt_at")]


def _rows(fields: list, returned: list[tuple], **known) -> list[Notification]:
    """Model instances of claimed rows, built without `Model.__init__` (see `sql.instances`).

    A batch is hundreds of rows with every column loaded: Django's per-field
    `__init__` walk was about a third of a dispatcher's time. JSON columns
    answer the common `{}` without parsing.
    """
    converters = [
        (i, field, _empty_object_first(convert) if isinstance(field, JSONField) else convert)
        for i, field in enumerate(fields)
        for convert in field.get_db_converters(connection)
    ]
    return sql.instances(Notification, fields, returned, converters=converters, **known)


def _empty_object_first(convert):
    """A JSON column's converter that answers the common `{}` (a row without context or data) without parsing."""

    def converted(value, expression, connection):
        return {} if value == "{}" else convert(value, expression, connection)

    return converted


def _platforms_attach(rows: Sequence[Notification], platforms: dict[int, Platform]) -> None:
    """Give each row its platform object from `platforms`, reading the ones missing there once."""
    missing = {row.platform_id for row in rows} - platforms.keys()
    if missing:
        platforms.update(Platform.objects.in_bulk(missing))
    for row in rows:
        # What `row.platform = ...` stores, without the descriptor's checks per row.
        row._state.fields_cache["platform"] = platforms[row.platform_id]


def _outcome(delivery: Notification, result: Result, now: datetime, primary: str) -> Outcome:
    attempts = delivery.attempts + 1
    next_attempt_at = None
    if result.ok:
        status = SENT
    elif result.retryable and not retry.DELIVERIES.exhausted(attempts):
        status = PENDING
        next_attempt_at = now + retry.DELIVERIES.backoff(attempts, result.retry_after)
    else:
        status = FAILED
    # The row keeps naming the provider its last unclear attempt may have
    # reached: a clear refusal that leaves it pending does not replace it.
    provider = "" if status == PENDING and result.definite else result.provider
    return Outcome(
        id=delivery.pk,
        delivery_status=status,
        error="" if result.ok else result.error[:2000],
        attempts=attempts,
        provider_message_id=result.provider_message_id[:255],
        units_sent=result.units_sent,
        units_failed=result.units_failed,
        sent_at=now if result.ok else None,
        next_attempt_at=next_attempt_at,
        provider=provider[:40],
        # `primary` is empty for a channel with one provider: nothing to fail over from.
        rule=DeliveryRule.FAILOVER if primary and result.provider and result.provider != primary else "",
    )


def _record(
    pairs: Sequence[tuple[Notification, Result]],
    primary: str = "",
    follow_ups: dict[str, list[str]] | None = None,
) -> None:
    """Record results that became known together, in one statement.

    Deliveries the provider refused for good (not retryable) fall back to
    their send's fallback channel (see `fallback`); the ids of the rows that
    wrote go into `follow_ups` by channel, for the caller to dispatch.
    """
    now = timezone.now()
    outcomes = [_outcome(delivery, result, now, primary) for delivery, result in pairs]
    sql.record(outcomes, now=now)
    metrics.deliveries_recorded(channel=pairs[0][0].channel, statuses=[o.delivery_status for o in outcomes])
    _outcomes_announce(pairs, outcomes)
    _refused_addresses_suppress(pairs, outcomes)
    refused = [
        delivery
        for (delivery, result), outcome in zip(pairs, outcomes, strict=True)
        if outcome.delivery_status == FAILED and not result.retryable
    ]
    if not refused or follow_ups is None:
        return
    try:
        # Claimed rows come without their users; a fallback reads their addresses.
        prefetch_related_objects(refused, "user")
        written = fallback_after_failures(refused)
    except Exception:
        # The results are recorded; a fallback that could not be written must not
        # make them look unrecorded (the backend's rows would be sent again).
        logger.exception("writing the fallbacks of %s refused deliveries failed", len(refused))
        return
    for channel, ids in written.items():
        follow_ups.setdefault(channel, []).extend(ids)


def _refused_addresses_suppress(pairs: Sequence[tuple[Notification, Result]], outcomes: Sequence[Outcome]) -> None:
    """List the addresses the provider refused for good; the outcomes are recorded whatever happens here."""
    refusals = [
        suppressions.AddressRefusal(
            platform_id=delivery.platform_id,
            channel=delivery.channel,
            address=delivery.address,
            provider=result.provider,
            detail=outcome.error,
            notification_id=delivery.pk,
        )
        for (delivery, result), outcome in zip(pairs, outcomes, strict=True)
        if result.address_refused and outcome.delivery_status == FAILED and delivery.address
    ]
    if not refusals:
        return
    try:
        suppressions.refusals_suppress(refusals=refusals)
    except Exception:
        # Like a fallback that could not be written: the results must not look
        # unrecorded. The address is refused again (and listed) on its next send.
        logger.exception("listing %s addresses refused by the provider failed", len(refusals))


def _outcomes_announce(pairs: Sequence[tuple[Notification, Result]], outcomes: Sequence[Outcome]) -> None:
    """`delivery.sent` / `delivery.failed` for final outcomes (a retry to come is neither), if anyone listens.

    The bulk form: listeners read the recorded rows, outcome included.
    """
    signals = {SENT: lifecycle.delivery_sent, FAILED: lifecycle.delivery_failed}
    by_event: dict[tuple[str, int], list[str]] = {}
    wanted: dict[tuple[str, int], bool] = {}
    for (delivery, _result), outcome in zip(pairs, outcomes, strict=True):
        signal = signals.get(outcome.delivery_status)
        if signal is None:
            continue
        key = (outcome.delivery_status, delivery.platform_id)
        if key not in wanted:
            wanted[key] = lifecycle.wanted(signal, platform_id=delivery.platform_id)
        if wanted[key]:
            by_event.setdefault(key, []).append(str(delivery.pk))
    for (status, platform_id), ids in by_event.items():
        lifecycle.announce_notifications(signals[status], platform_id=platform_id, notification_ids=ids)


def _release(rows: Sequence[Notification], *, until: datetime | None = None) -> None:
    """Hand claimed rows back unsent, no attempt spent: due at `until` (default now)."""
    if rows:
        Notification.objects.filter(pk__in=[r.pk for r in rows], delivery_status=DeliveryStatus.PENDING).update(
            claimed_until=None, next_attempt_at=until or timezone.now()
        )


def _send_claimed(
    router: ProviderRouter, claimed: list[Notification], follow_ups: dict[str, list[str]]
) -> tuple[int, bool]:
    """Send claimed rows, recording each group of results as it comes (see `BaseBackend.send_groups`).

    Returns (handled, broke). A backend that raises (instead of returning a
    failed Result) has the row in flight recorded as a retryable failure, so a
    row that crashes it every time ends failed after its attempts; the rest of
    the claim is released for the next dispatcher at once. Rows the router
    held (every provider's circuit open) are released for when it said.
    """
    recorded: set = set()
    try:
        started = time.perf_counter()
        for group in router.send_groups(claimed):
            # The wait for this group: one provider call (or one message on an open connection).
            metrics.provider_latency(
                channel=router.channel, backend=group[0][1].provider, seconds=time.perf_counter() - started
            )
            _record(group, router.failover_from, follow_ups)
            recorded.update(d.pk for d, _ in group)
            started = time.perf_counter()
    except Exception as exc:  # a broken backend must not strand claimed rows
        logger.exception("%s backend failed after %s of %s deliveries", router.channel, len(recorded), len(claimed))
        rest = [r for r in claimed if r.pk not in recorded]
        if not rest:
            return len(recorded), True  # everything was recorded; the backend broke on closing
        in_flight = getattr(exc, "in_flight", None) or rest[0]
        failure = Result.failed(f"Backend error: {exc}"[:2000], retryable=True)
        failure.provider = getattr(exc, "provider", router.primary)
        _record([(in_flight, failure)], router.failover_from)
        _release([r for r in rest if r.pk != in_flight.pk])
        return len(recorded) + 1, True
    _release([r for r in claimed if r.pk not in recorded], until=router.held_until)
    return len(recorded), False


def running_from(should_stop: StopCheck | None) -> RunningCheck | None:
    """A single send's `should_stop` as the many-sends form."""
    if should_stop is None:
        return None
    return lambda sources: () if should_stop() else sources


def still_running(sources: Sequence[str], running: RunningCheck) -> list[str]:
    going = set(running(list(sources)))
    return [s for s in sources if s in going]


def _dispatch(
    *,
    channel: str,
    sources: Sequence[str] | None = None,
    ids=None,
    ticket=None,
    limit: int | None = None,
    running: RunningCheck | None = None,
    after=None,
    upto=None,
    until: float | None = None,
) -> tuple[int, object]:
    """Claim, send and record batch after batch; returns (handled, last claimed id or None when done).

    `until` (a `time.monotonic()` value): stop after the batch that passes it,
    answering the last id claimed so that a successor goes on from there.
    """
    key = settings_key(channel)
    router = ProviderRouter(channel=key, providers=providers(key))
    step = max(router.batch_size, 1)
    handled = 0
    platforms: dict[int, Platform] = {}
    # Each claim starts after the last one: the rows before it are sent or
    # held, and their dead index entries (until vacuum) need not be walked
    # again. A row skipped this way (locked, held) is taken by a later call.
    while limit is None or handled < limit:
        if running is not None and sources is not None:
            # Sources stopped meanwhile (a cancelled job) leave the claim; the rest go on.
            sources = still_running(sources, running)
            if not sources:
                break
        size = step if limit is None else min(step, limit - handled)
        rows = _claim(
            channel=channel,
            sources=sources,
            ids=ids,
            ticket=ticket,
            limit=size,
            after=after,
            upto=upto,
            platforms=platforms,
        )
        if not rows:
            break
        after = rows[-1].pk
        follow_ups: dict[str, list[str]] = {}
        done, broke = _send_claimed(router, rows, follow_ups)
        handled += done
        for to, follow_ids in follow_ups.items():
            # Fallbacks of this batch go out now; any left over, the sweep sends after their lease.
            _dispatch(channel=to, ids=follow_ids, sources=sources)
        if broke:
            break
        if until is not None and time.monotonic() >= until:
            return handled, after
    return handled, None


def deliveries_dispatch(
    *, source: str, channel: str, limit: int | None = None, should_stop: StopCheck | None = None
) -> int:
    """Send the due pending rows of one source and channel; returns how many were handled."""
    return _dispatch(channel=channel, sources=[source], limit=limit, running=running_from(should_stop))[0]


def deliveries_dispatch_ids(*, channel: str, ids: Sequence, source: str | None = None, ticket=None) -> int:
    """Send the due pending rows among `ids` (one sweep item, or a chunk queued by an earlier version)."""
    return _dispatch(channel=channel, sources=None if source is None else [source], ids=list(ids), ticket=ticket)[0]


def deliveries_dispatch_range(*, sources: Sequence[str], channel: str, after=None, upto=None) -> int:
    """A queued dispatcher: send the due pending rows of `sources` with ids in (after, upto], batch after batch.

    Runs until its range has nothing left to claim, or for about
    DISPATCH_TASK_SECONDS: then it queues its successor from the last id it
    claimed and returns, so a huge send does not hold a worker for hours
    while other work waits behind it. Returns how many rows it handled.
    """
    seconds = tuning.setting("DISPATCH_TASK_SECONDS", tuning.DISPATCH_TASK_SECONDS)
    handled, last = _dispatch(
        channel=channel, sources=list(sources), after=after, upto=upto, until=time.monotonic() + seconds
    )
    if last is not None and _QUEUE is not None:
        _QUEUE.enqueue(list(sources), channel, str(last), None if upto is None else str(upto))
    return handled


def _ranges(ids: list) -> list[tuple[str | None, str | None]]:
    """A send's pending ids (in id order) as a few ranges (after, upto], for one dispatcher each.

    One task per range, not per batch: a worker claims batch after batch of
    its range in one task (the per-task cost of Celery is paid a few times per
    send, not hundreds), and the ranges do not overlap, so no dispatcher walks
    the rows another one holds or sent, and no task is left with nothing to do
    because others took its rows. Ranges hold at least DISPATCH_RANGE rows;
    a send has at most DISPATCH_TASKS of them (the parallelism it may get).
    The last range stays open: rows of the send written after this count (a
    fallback) are in it.
    """
    least = max(tuning.setting("DISPATCH_RANGE", tuning.DISPATCH_RANGE), 1)
    count = max(1, min(tuning.setting("DISPATCH_TASKS", tuning.DISPATCH_TASKS), -(-len(ids) // least)))
    size = -(-len(ids) // count)
    bounds: list[str | None] = [str(ids[min(start + size, len(ids)) - 1]) for start in range(0, len(ids), size)]
    bounds[-1] = None
    return list(zip([None, *bounds[:-1]], bounds, strict=True))


def _enqueue(*, sources: Sequence[str], channel: str, ranges: list[tuple[str | None, str | None]]) -> None:
    for after, upto in ranges:
        # Workers must see the rows: queue only once they are committed.
        transaction.on_commit(partial(_QUEUE.enqueue, list(sources), channel, after, upto))


def _pending_ids(*, sources: Sequence[str], channel: str) -> list:
    now = timezone.now()
    return list(
        of_sources(Notification.objects.filter(channel=channel, delivery_status=DeliveryStatus.PENDING), sources)
        .filter(_free(now))
        .order_by("id")
        .values_list("id", flat=True)
    )


def dispatch_channel(
    *, sources: Sequence[str], channel: str, wait: bool, running: RunningCheck | None, alongside: bool = False
) -> None:
    """Dispatch one channel's pending rows of the given sources: here, or through the queue.

    `alongside`: the caller is one of several dispatchers of these sources
    that each send what they can claim (the builder's workers): it sends
    here, queues nothing, and returns without waiting for rows another holds.
    """
    if alongside:
        _dispatch(channel=channel, sources=sources, running=running)
        return
    ids = _pending_ids(sources=sources, channel=channel)
    if not ids:
        return
    in_place = (
        _QUEUE is None
        or len(ids) <= tuning.setting("SYNC_LIMIT", tuning.SYNC_LIMIT)
        or _QUEUE.runs_inline()
        or connection.in_atomic_block
    )
    if wait and in_place:
        # Small sends, inline queues (tests) and callers inside a transaction
        # (workers could not see uncommitted rows) dispatch here.
        _dispatch(channel=channel, sources=sources, running=running)
        return
    if _QUEUE is None:
        return  # nothing to hand them to: the sweep sends them once their lease ends
    ranges = _ranges(ids)
    if not wait:
        _enqueue(sources=sources, channel=channel, ranges=ranges)
        return
    # The caller works the first range itself and queues only the others (a
    # task for the range it sends would find nothing left), then helps with
    # what the workers have not claimed yet and waits for the rest.
    _enqueue(sources=sources, channel=channel, ranges=ranges[1:])
    _dispatch(channel=channel, sources=sources, running=running, upto=ranges[0][1])
    dispatch_finish(sources=sources, channel=channel, running=running)


def dispatch_finish(
    *, sources: Sequence[str], channel: str, running: RunningCheck | None = None, poll: float = 0.2
) -> None:
    """Work through the rows no dispatcher holds, then wait for those others hold.

    What a waiting caller does after its first range, and the end of
    `alongside` dispatching. Returns when no row of the sends is pending and
    held: rows waiting for a retry are left to the sweep rather than keeping
    the caller.
    """
    while True:
        if running is not None:
            sources = still_running(sources, running)
            if not sources:
                return
        handled, _ = _dispatch(channel=channel, sources=sources, running=running)
        if handled:
            continue
        held = of_sources(
            Notification.objects.filter(
                channel=channel, delivery_status=DeliveryStatus.PENDING, claimed_until__gt=timezone.now()
            ),
            sources,
        ).exists()
        if not held:
            return
        time.sleep(poll)


def deliveries_cancel(*, source: str, channel: str | None = None, error: str = "Cancelled before delivery") -> int:
    """Stop a send: its pending rows that no dispatcher holds become failed.

    Rows a dispatcher holds right now finish (they may be on the wire); every
    later claim finds nothing, so each worker stops before its next batch.
    Returns how many rows were cancelled.
    """
    now = timezone.now()
    qs = Notification.objects.filter(source=source, delivery_status=DeliveryStatus.PENDING).filter(unleased(now))
    if channel is not None:
        qs = qs.filter(channel=channel)
    return qs.update(delivery_status=DeliveryStatus.FAILED, error=error, next_attempt_at=None, updated_at=now)

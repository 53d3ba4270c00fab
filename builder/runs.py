"""The builder's sending worker: a `sending` build's recipients, chunk by chunk, through the pipeline.

It walks the build's recipient rows in chunks that a worker claims under a
lease (SKIP LOCKED) and hands each chunk to the one delivery pipeline under the
source `build:<id>`, users and bare addresses in one call (the pipeline gives
each the channels it can take); the pipeline's unique keys make a re-run after
a crash send nothing twice, and each recipient row is settled from the
pipeline's per-recipient outcomes. The due-work sweep claims queued builds
whose `process_on` has come and sends whose worker died.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import NamedTuple

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from builder import templating
from builder.errors import BuildError
from builder.models import Build, BuildRecipient, BuildStatus, RecipientStatus
from notifications import lifecycle
from notifications.pipeline import Recipient, notification_send, notification_send_finish
from notifications.pipeline.counts import recipient_outcomes
from notifications.pipeline.retry import BUILD_RUNS
from notifications.scheduler import claim_rows, first_due, oldest

logger = logging.getLogger(__name__)

# A sending worker owns the build, and the chunk of recipients it claimed, this long.
LEASE = timedelta(minutes=5)


def _chunk_size() -> int:
    return max(1, int(getattr(settings, "BUILDER_SEND_CHUNK", 5000)))


def builds_claim_due(*, now: datetime, limit: int, lease: timedelta) -> list[str]:
    """The scheduler's claim: queued builds whose process_on has come, and sends whose worker died."""
    due = Q(status=BuildStatus.QUEUED, process_on__lte=now) | Q(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), status=BuildStatus.SENDING
    )
    ids = claim_rows(
        Build.objects.filter(due),
        limit=limit,
        updates={
            "status": BuildStatus.SENDING,
            "claimed_until": now + lease,
            "started_at": Coalesce(F("started_at"), Value(now)),
        },
    )
    return [str(pk) for pk in ids]


def builds_next_due(*, after: datetime, until: datetime) -> datetime | None:
    """When the next queued build's `process_on` comes in (after, until] (the sweep's follow-up)."""
    return first_due(Build.objects.filter(status=BuildStatus.QUEUED), "process_on", after=after, until=until)


def builds_oldest_due(*, now: datetime) -> datetime | None:
    """Since when the longest-waiting queued build has been due (a dead worker's build: since its lease ended)."""
    due = oldest(Build.objects.filter(status=BuildStatus.QUEUED, process_on__lte=now), "process_on")
    orphaned = oldest(Build.objects.filter(status=BuildStatus.SENDING, claimed_until__lt=now), "claimed_until")
    return min((t for t in (due, orphaned) if t is not None), default=None)


def build_run(*, build_id) -> None:
    """Send the pending recipients of a `sending` build, chunk by chunk, then settle its status.

    Safe to run many times and side by side: chunks are claimed with SKIP
    LOCKED under a lease, and the pipeline never sends a delivery twice.
    """
    build = Build.objects.select_related("platform").filter(pk=build_id).first()
    if build is None or build.status != BuildStatus.SENDING:
        return
    try:
        render = templating.build_renderer(build=build)
    except BuildError as exc:
        _build_fail(build, exc.message)
        return
    ids: list = []
    try:
        while _lease_renew(build):
            chunk = _chunk_claim(build)
            ids = [row[0] for row in chunk.rows]
            if not chunk.rows:
                break
            _chunk_send(build, chunk, render)
        # This worker's chunks are sent; rows the build's other workers still
        # hold are waited for here, once, rather than after every chunk.
        notification_send_finish(source=build.source, channels=build.channels)
        _reconcile(build)
        _finish_if_done(build)
    except BuildError as exc:
        # The template cannot be rendered: trying again would fail the same way.
        _build_fail(build, exc.message)
    except Exception as exc:  # recorded on the build; the scheduler retries it
        logger.exception("sending build %s failed", build.pk)
        # The chunk in hand goes back to the pool for the retry, with a lease that
        # has ended rather than none: some of its deliveries may be written.
        BuildRecipient.objects.filter(pk__in=ids, status=RecipientStatus.PENDING).update(claimed_until=timezone.now())
        _run_failed(build, exc)


def _lease_renew(build: Build) -> bool:
    """Extend the build's lease; False when it is no longer sending (finished, failed)."""
    return bool(
        Build.objects.filter(pk=build.pk, status=BuildStatus.SENDING).update(claimed_until=timezone.now() + LEASE)
    )


class Chunk(NamedTuple):
    # (pk, user_id, recipient_key, email) of each claimed recipient, in pk order.
    rows: list[tuple]
    # No recipient of the chunk was claimed before, so none has deliveries yet.
    fresh: bool


def _chunk_claim(build: Build) -> Chunk:
    """Claim the next chunk of pending recipients under a lease."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        # One statement: lock (SKIP LOCKED), lease and read the chunk. A recipient
        # never claimed before has no lease end yet (a failed run's chunk is
        # handed back with an expired one, see build_run).
        table = connection.ops.quote_name(BuildRecipient._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH picked AS (SELECT id, claimed_until IS NOT NULL AS again FROM {table} "
                "WHERE build_id = %s AND status = %s AND (claimed_until IS NULL OR claimed_until < %s) "
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
                f"UPDATE {table} AS r SET claimed_until = %s FROM picked WHERE r.id = picked.id "
                "RETURNING r.id, r.user_id, r.recipient_key, r.email, picked.again",
                [build.pk, RecipientStatus.PENDING, now, _chunk_size(), now + LEASE],
            )
            claimed = sorted(cursor.fetchall())
        return Chunk(rows=[row[:4] for row in claimed], fresh=not any(row[4] for row in claimed))
    claimable = BuildRecipient.objects.filter(build=build, status=RecipientStatus.PENDING).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    ids = claim_rows(claimable, limit=_chunk_size(), updates={"claimed_until": now + LEASE})
    rows = (
        BuildRecipient.objects.filter(pk__in=ids).order_by("pk").values_list("pk", "user_id", "recipient_key", "email")
    )
    return Chunk(rows=list(rows), fresh=False)


def _chunk_send(build: Build, chunk: Chunk, render) -> None:
    # Users and bare addresses together: the pipeline emails an address and
    # nothing else. A recipient whose account was deleted since the preview is
    # left out and settled below.
    #
    # A recipient claimed again (its deliveries wait for the end of quiet hours
    # or a cap's window, or a worker died after writing them) already has its
    # rows: the pipeline writes all of a recipient's channels in one
    # transaction, and the sweep sends them when due. It is only settled here,
    # never handed to the front door again, where the unique key would refuse
    # its rows but the delivery rules would still count it (frequency caps).
    # A fresh chunk (the common case) has nothing written to look for.
    rows = chunk.rows
    written = {} if chunk.fresh else recipient_outcomes(source=build.source, keys=[key for _, _, key, _ in rows])
    recipients = [
        Recipient(user_id=user_id) if user_id is not None else Recipient(address=email)
        for _, user_id, key, email in rows
        if key not in written and (user_id is not None or key.startswith("email:"))
    ]
    if recipients:
        # No counts: each recipient's outcome is read below, for this chunk alone.
        notification_send(
            platform=build.platform,
            source=build.source,
            channels=build.channels,
            recipients=recipients,
            render=render,
            count=False,
            # The build's other workers dispatch the same source: each sends what
            # it claims and none waits for another's rows (settled as they finish,
            # see _reconcile).
            alongside=True,
        )
    _settle(build, rows, settle_missing=True, known=written)


def _settle(build: Build, rows: list[tuple], *, settle_missing: bool, known: dict | None = None) -> None:
    """Settle the recipient rows, and the build's counters, from the pipeline's per-recipient outcomes.

    A recipient is sent when any of its channels delivered, pending while any
    is still pending, failed otherwise. `settle_missing` settles recipients the
    pipeline wrote nothing for: an account deleted since the preview, or a
    user who opted out of this type on every channel of the build.
    """
    # `known`: outcomes read a moment ago (recipients settled, not sent again); only the rest are read.
    known = known or {}
    outcomes = {**known, **recipient_outcomes(source=build.source, keys=[k for _, _, k, _ in rows if k not in known])}
    settled: list[tuple[int, str, str]] = []
    for pk, user_id, key, _ in rows:
        outcome = outcomes.get(key)
        if outcome is None:
            if not settle_missing:
                continue
            if key.startswith("user:") and user_id is None:
                reason = "The user account no longer exists."
            else:
                reason = "The recipient opted out of these notifications on every channel."
            settled.append((pk, RecipientStatus.FAILED, reason))
        elif outcome.sent:
            settled.append((pk, RecipientStatus.SENT, "; ".join(outcome.errors)))
        elif outcome.pending:
            settled.append((pk, RecipientStatus.PENDING, ""))
        else:
            settled.append((pk, RecipientStatus.FAILED, "; ".join(outcome.errors)))
    if not settled:
        return
    if connection.vendor == "postgresql":
        _settle_postgresql(build, settled)
        return
    groups: dict[tuple[str, str], list] = {}
    for pk, status, error in settled:
        groups.setdefault((status, error), []).append(pk)
    sent = failed = 0
    with transaction.atomic():
        for (status, error), pks in groups.items():
            mine = BuildRecipient.objects.filter(pk__in=pks, status=RecipientStatus.PENDING)
            if status == RecipientStatus.PENDING:
                # Another dispatcher holds these deliveries; look again after the lease.
                mine.update(claimed_until=timezone.now() + LEASE)
                continue
            moved = mine.update(status=status, error=error[:2000], claimed_until=None)
            if status == RecipientStatus.SENT:
                sent += moved
            else:
                failed += moved
        if sent or failed:
            Build.objects.filter(pk=build.pk).update(
                sent_count=F("sent_count") + sent, failed_count=F("failed_count") + failed
            )


def _settle_postgresql(build: Build, settled: list[tuple[int, str, str]]) -> None:
    """One statement: every recipient row of the chunk, then the build's counters by the rows that moved."""
    recipients = connection.ops.quote_name(BuildRecipient._meta.db_table)
    builds = connection.ops.quote_name(Build._meta.db_table)
    ids, statuses, errors = (list(column) for column in zip(*settled, strict=True))
    pending, sent, failed = RecipientStatus.PENDING.value, RecipientStatus.SENT.value, RecipientStatus.FAILED.value
    connection.ensure_connection()
    # psycopg's own cursor on Django's connection (same transaction), arrays in binary:
    # Django's client-side binding would spell out every id and error in the SQL text.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            f"WITH moved AS (UPDATE {recipients} AS r SET status = v.status, error = left(v.error, 2000), "
            # Still pending: another dispatcher holds these deliveries; look again after the lease.
            "claimed_until = CASE WHEN v.status = %s THEN %s::timestamptz END "
            "FROM unnest(%b::bigint[], %b::text[], %b::text[]) AS v(id, status, error) "
            "WHERE r.id = v.id AND r.status = %s RETURNING r.status), "
            "counted AS (SELECT count(*) FILTER (WHERE status = %s) AS sent, "
            "count(*) FILTER (WHERE status = %s) AS failed FROM moved) "
            f"UPDATE {builds} AS b SET sent_count = b.sent_count + c.sent, failed_count = b.failed_count + c.failed "
            "FROM counted AS c WHERE b.id = %s AND c.sent + c.failed > 0",
            [pending, timezone.now() + LEASE, ids, statuses, errors, pending, sent, failed, build.pk],
        )


def _reconcile(build: Build) -> None:
    """Settle pending recipients whose deliveries another worker finished after it settled its chunk."""
    last = 0
    while True:
        rows = list(
            BuildRecipient.objects.filter(build=build, status=RecipientStatus.PENDING, pk__gt=last)
            .order_by("pk")
            .values_list("pk", "user_id", "recipient_key", "email")[: _chunk_size()]
        )
        if not rows:
            return
        _settle(build, rows, settle_missing=False)
        last = rows[-1][0]


def _finish_if_done(build: Build) -> None:
    if BuildRecipient.objects.filter(build=build, status=RecipientStatus.PENDING).exists():
        return  # another worker holds the rest; it (or the scheduler, if it dies) finishes
    build.refresh_from_db(fields=["sent_count", "failed_count"])
    failed = build.sent_count == 0 and build.failed_count > 0
    finished = Build.objects.filter(pk=build.pk, status=BuildStatus.SENDING).update(
        status=BuildStatus.FAILED if failed else BuildStatus.COMPLETED,
        error="No recipient could be reached." if failed else "",
        completed_at=timezone.now(),
        claimed_until=None,
    )
    if finished:
        _completed_announce(build)


def _completed_announce(build: Build) -> None:
    """`build.completed` (completed or failed), once: only the worker whose UPDATE ended the build announces."""
    if not lifecycle.wanted(lifecycle.build_completed, platform_id=build.platform_id):
        return
    build.refresh_from_db(fields=["status", "sent_count", "failed_count", "error", "completed_at"])
    lifecycle.announce(
        lifecycle.build_completed,
        platform_id=build.platform_id,
        payload={
            "build_id": str(build.pk),
            "status": build.status,
            "sent_count": build.sent_count,
            "failed_count": build.failed_count,
            "error": build.error[:300],
            "completed_at": build.completed_at.isoformat() if build.completed_at else None,
        },
    )


def _build_fail(build: Build, error: str) -> None:
    failed = Build.objects.filter(pk=build.pk, status=BuildStatus.SENDING).update(
        status=BuildStatus.FAILED, error=error[:2000], completed_at=timezone.now(), claimed_until=None
    )
    if failed:
        _completed_announce(build)


def _run_failed(build: Build, exc: Exception) -> None:
    """Record an unexpected error; the build is retried after a pause, and failed after a few tries."""
    build.refresh_from_db(fields=["attempts"])
    attempts = build.attempts + 1
    error = f"{type(exc).__name__}: {exc}"[:2000]
    if BUILD_RUNS.exhausted(attempts):
        Build.objects.filter(pk=build.pk, status=BuildStatus.SENDING).update(attempts=attempts)
        _build_fail(build, error)
        return
    Build.objects.filter(pk=build.pk, status=BuildStatus.SENDING).update(
        attempts=attempts, error=error, claimed_until=timezone.now() + BUILD_RUNS.backoff(attempts)
    )

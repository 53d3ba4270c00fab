"""Runs of scheduled jobs: the due-work sweep's claim and the worker's run.

A job is claimed by the sweep (`scheduled_claim`), run by a worker
(`scheduled_run`) through the delivery pipeline under the source
`scheduled:<id>`, and finished from its delivery rows' counts. Because the
source of a job never changes, running it again, after a crash or a transient
failure, only sends what is still unsent.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, F, Min, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from notifications import lifecycle
from notifications.bulk_scheduled import selectors
from notifications.bulk_scheduled.inputs import Content
from notifications.bulk_scheduled.sends import fallback_for, message_for
from notifications.models import DeliveryStatus, Notification, ScheduledNotification, ScheduledStatus
from notifications.pipeline import Send, SendResult, notification_send_many, send_counts
from notifications.pipeline.dispatch import deliveries_cancel
from notifications.pipeline.retry import SCHEDULED_JOBS
from notifications.scheduler import claim_rows, first_due, oldest

logger = logging.getLogger(__name__)


def _setting_seconds(name: str, default: float) -> timedelta:
    return timedelta(seconds=float(getattr(settings, name, default)))


def job_lease() -> timedelta:
    """How long a worker owns a job between two renewals (one per batch)."""
    return _setting_seconds("SCHEDULED_JOB_LEASE_SECONDS", 300)


def max_attempts() -> int:
    return SCHEDULED_JOBS.attempts()


def retry_delay(attempt: int) -> timedelta:
    """Backoff after the `attempt`-th run (the pipeline's one retry policy, with the SCHEDULED_* settings)."""
    return SCHEDULED_JOBS.backoff(attempt)


def _claim_updates(now: datetime, lease: timedelta) -> dict:
    return {
        "status": ScheduledStatus.PROCESSING,
        "claimed_until": now + lease,
        "processing_started_at": Coalesce(F("processing_started_at"), Value(now, output_field=DateTimeField())),
        "updated_at": now,
    }


def scheduled_claim(*, now: datetime, limit: int, lease: timedelta) -> list[int]:
    """Claim due pending jobs and processing jobs whose worker's lease ran out.

    Each is one `SELECT ... FOR UPDATE SKIP LOCKED` on a partial index, so any
    number of sweeps run side by side and the table's future jobs cost nothing.
    """
    expired = claim_rows(
        ScheduledNotification.objects.filter(status=ScheduledStatus.PROCESSING, claimed_until__lt=now),
        limit=limit,
        updates=_claim_updates(now, lease),
        order_by=("claimed_until", "pk"),
    )
    due = []
    if len(expired) < limit:
        due = claim_rows(
            ScheduledNotification.objects.filter(status=ScheduledStatus.PENDING, due_at__lte=now),
            limit=limit - len(expired),
            updates=_claim_updates(now, lease),
            order_by=("due_at", "pk"),
        )
    return expired + due


def scheduled_next_due(*, after: datetime, until: datetime) -> datetime | None:
    """When the first pending job falls due in (after, until]: one probe of the partial index."""
    pending = ScheduledNotification.objects.filter(status=ScheduledStatus.PENDING)
    return first_due(pending, "due_at", after=after, until=until)


def scheduled_oldest_due(*, now: datetime) -> datetime | None:
    """Since when the longest-waiting unclaimed job has been due (a dead worker's job: since its lease ended)."""
    due = oldest(ScheduledNotification.objects.filter(status=ScheduledStatus.PENDING, due_at__lte=now), "due_at")
    orphaned = oldest(
        ScheduledNotification.objects.filter(status=ScheduledStatus.PROCESSING, claimed_until__lt=now), "claimed_until"
    )
    return min((t for t in (due, orphaned) if t is not None), default=None)


def _runner(job_ids: dict[str, int]):
    """`running` for the pipeline, asked before every batch with the sources still at work.

    A cancelled (or otherwise no longer processing) job stops. The run renewed
    the leases when it started; they are renewed again once a third of the
    lease has passed, and in between a plain read answers, which costs no commit.
    """
    renewed_at = time.monotonic()

    def running(sources: list[str]) -> list[str]:
        nonlocal renewed_at
        lease = job_lease()
        ids = [job_ids[s] for s in sources]
        jobs = ScheduledNotification.objects.filter(pk__in=ids, status=ScheduledStatus.PROCESSING)
        if time.monotonic() - renewed_at >= lease.total_seconds() / 3:
            renewed_at = time.monotonic()
            jobs.update(claimed_until=timezone.now() + lease)
        going = set(jobs.values_list("pk", flat=True))
        return [s for s in sources if job_ids[s] in going]

    return running


def _finish_values(job: ScheduledNotification, counts: SendResult, *, error: str = "") -> dict:
    sent = counts.sent >= 1
    if not sent and not error:
        error = selectors.latest_delivery_error(source=job.source) or "All deliveries failed"
        error = f"All {counts.total_recipients} deliveries failed: {error}" if counts.total_recipients else error
    return {
        "status": ScheduledStatus.SENT if sent else ScheduledStatus.FAILED,
        "sent": sent,
        "last_error": "" if sent else error[:2000],
        "total_recipients": counts.total_recipients,
        "sent_count": counts.sent,
        "failed_count": counts.failed,
    }


def _finish_many(finished: list[tuple[ScheduledNotification, SendResult, str]]) -> None:
    """Record the outcome of finished jobs (only those still processing).

    Jobs that end the same way (sent, one recipient, no error: the common
    case of a batch) share one UPDATE.
    """
    now = timezone.now()
    alike: dict[tuple, list[int]] = {}
    for job, counts, error in finished:
        values = _finish_values(job, counts, error=error)
        alike.setdefault(tuple(sorted(values.items())), []).append(job.pk)
    for values, pks in alike.items():
        fields = dict(values)
        sent = fields.pop("sent")
        ScheduledNotification.objects.filter(pk__in=pks, status=ScheduledStatus.PROCESSING).update(
            **fields, sent_at=now if sent else None, finished_at=now, claimed_until=None, updated_at=now
        )
    _finished_announce([job for job, _counts, _error in finished], now)


def _finished_announce(jobs: list[ScheduledNotification], now: datetime) -> None:
    """`scheduled_job.finished` for the jobs this call finished (not those another worker finished), if wanted."""
    platforms = {job.platform_id for job in jobs}
    wanted = {pid for pid in platforms if lifecycle.wanted(lifecycle.scheduled_job_finished, platform_id=pid)}
    if not wanted:
        return
    rows = ScheduledNotification.objects.filter(
        pk__in=[job.pk for job in jobs if job.platform_id in wanted], finished_at=now
    ).only("pk", "platform_id", "channel", "status", "total_recipients", "sent_count", "failed_count", "last_error")
    by_platform: dict[int, list[dict]] = {}
    for row in rows:
        by_platform.setdefault(row.platform_id, []).append(
            {
                "job_id": str(row.pk),
                "source": row.source,
                "channel": row.channel,
                "status": row.status,
                "total_recipients": row.total_recipients,
                "sent_count": row.sent_count,
                "failed_count": row.failed_count,
                "error": row.last_error[:300],
            }
        )
    for pid, payloads in by_platform.items():
        lifecycle.announce_many(lifecycle.scheduled_job_finished, platform_id=pid, payloads=payloads)


def _finish(job: ScheduledNotification, counts: SendResult, *, error: str = "") -> None:
    _finish_many([(job, counts, error)])


def _retry_or_give_up(job: ScheduledNotification, *, error: str, counts: SendResult | None = None) -> None:
    """Put the job back with exponential backoff, or finish it once the attempts are used up."""
    counts = counts or send_counts(source=job.source)
    if job.attempt_count >= max_attempts():
        _finish(job, counts, error="" if counts.sent else f"Gave up after {job.attempt_count} attempts: {error}")
        return
    now = timezone.now()
    due = now + retry_delay(job.attempt_count)
    # Deliveries still leased (a dead worker's claim, a provider's Retry-After)
    # cannot go before their lease ends: no point waking up earlier.
    leased = Notification.objects.filter(
        source=job.source, delivery_status=DeliveryStatus.PENDING, claimed_until__gt=now
    ).aggregate(until=Min("claimed_until"))["until"]
    if leased is not None and leased > due:
        due = leased
    ScheduledNotification.objects.filter(pk=job.pk, status=ScheduledStatus.PROCESSING).update(
        status=ScheduledStatus.PENDING,
        due_at=due,
        claimed_until=None,
        last_error=error[:2000],
        total_recipients=counts.total_recipients,
        sent_count=counts.sent,
        failed_count=counts.failed,
        updated_at=now,
    )


def scheduled_run(*, job_id: int) -> None:
    """Run one claimed job to the end, or until it is cancelled (see `scheduled_run_many`)."""
    scheduled_run_many(job_ids=[job_id])


def _start(job_ids: list[int]) -> list[ScheduledNotification]:
    """Start the claimed jobs that are still processing: count an attempt, renew the lease.

    An attempt counts when a run starts, not when a sweep claims: a job whose
    claim ran out while it waited in a long queue is claimed again without
    using up its attempts. The rows are locked while they are read and
    updated, so two workers holding the same job (a claim that ran out) each
    count their own attempt.
    """
    with transaction.atomic():
        jobs = list(
            ScheduledNotification.objects.select_for_update(of=("self",))
            .select_related("platform")
            .filter(pk__in=job_ids, status=ScheduledStatus.PROCESSING)
            .order_by("due_at", "pk")
        )
        if jobs:
            until = timezone.now() + job_lease()
            ScheduledNotification.objects.filter(pk__in=[j.pk for j in jobs]).update(
                attempt_count=F("attempt_count") + 1, claimed_until=until
            )
            for job in jobs:
                job.attempt_count += 1
                job.claimed_until = until
    return jobs


def scheduled_run_many(*, job_ids: list[int]) -> None:
    """Run a batch of claimed jobs to the end, or until each is cancelled.

    Recipients are resolved now, at dispatch time, for the whole batch at
    once, and the batch goes through the pipeline as one `notification_send_many`
    (each job its own source, so each stays idempotent on its own): many jobs
    falling due in the same second cost a handful of statements, not a handful
    each. A job that finds deliveries left pending (transient provider
    failures, a dead worker's rows) or whose run hits an error is put back
    with backoff; the next run sends only what is still unsent.
    """
    jobs = _start(job_ids)
    runnable, finished = [], []
    for job in jobs:
        if job.attempt_count > max_attempts():
            error = f"Gave up after {job.attempt_count - 1} attempts"
            finished.append((job, send_counts(source=job.source), error))
        else:
            runnable.append(job)
    try:
        resolved = selectors.recipients_resolve_many(
            targets=[(job.platform, job.channel, selectors.job_targeting(job)) for job in runnable]
        )
        recipients_of = {job.pk: recipients for job, (recipients, _) in zip(runnable, resolved, strict=True)}
        # A job nobody is left to reach fails, unless an earlier run of it already wrote rows.
        nobody = [job for job in runnable if not recipients_of[job.pk]]
        written = set(
            Notification.objects.filter(source__in=[job.source for job in nobody])
            .values_list("source", flat=True)
            .distinct()
            .order_by()
        )
        unreachable = {job.pk for job in nobody if job.source not in written}
        reachable = [job for job in runnable if job.pk not in unreachable]
        counts = notification_send_many(
            sends=[_job_send(job, recipients_of[job.pk]) for job in reachable],
            running=_runner({job.source: job.pk for job in reachable}),
        )
    except Exception as exc:  # any failure of a run is retried with backoff, then reported
        logger.exception("scheduled notifications %s failed", [j.pk for j in runnable])
        _finish_many(finished)
        for job in runnable:
            _retry_or_give_up(job, error=f"{type(exc).__name__}: {exc}")
        return
    for job in runnable:
        if job.pk in unreachable:
            finished.append((job, SendResult(), "No target users found"))
            continue
        job_counts = counts[job.source]
        if job_counts.pending:
            if _cancelled_meanwhile(job):
                continue
            error = selectors.latest_delivery_error(source=job.source) or "Deliveries still pending"
            _retry_or_give_up(job, error=f"{job_counts.pending} deliveries pending: {error}", counts=job_counts)
            continue
        finished.append((job, job_counts, ""))
    _finish_many(finished)


def _job_send(job: ScheduledNotification, recipients) -> Send:
    raw = job.target_raw or {}
    content = Content(
        title=job.title,
        message=job.message,
        html=job.html,
        notification_type=raw.get("type", "system_alert"),
        level=raw.get("level", "info"),
    )
    return Send(
        platform=job.platform,
        source=job.source,
        channels=[job.delivery_channel],
        recipients=recipients,
        message=message_for(job.channel, content, image_url=job.image_url),
        fallback_channel=fallback_for(raw.get("fallback_channel") or ""),
    )


def _cancelled_meanwhile(job: ScheduledNotification) -> bool:
    """A job cancelled during its run: rows it wrote after the cancel must not go out later."""
    if ScheduledNotification.objects.filter(pk=job.pk, status=ScheduledStatus.CANCELLED).exists():
        deliveries_cancel(source=job.source)
        return True
    return False

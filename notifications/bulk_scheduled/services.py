"""Writes of bulk sends and scheduled jobs.

An immediate send and a scheduled job end in the same place: the delivery
pipeline (`notification_send`), with source `bulk:<uuid>` or `scheduled:<id>`.
A scheduled job is claimed by the due-work sweep (`scheduled_claim`), run by a
worker (`scheduled_run`) and finished from its delivery rows' counts. Because
the source of a job never changes, running it again, after a crash or a
transient failure, only sends what is still unsent.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import DateTimeField, F, Min, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from notifications.bulk_scheduled import selectors
from notifications.bulk_scheduled.inputs import BulkInput, BulkInputError, Content, image_kind
from notifications.digests import DigestOutcome, DigestRequest, digest_join_send, digests_apply
from notifications.models import (
    DELIVERY_CHANNEL,
    Attachment,
    DeliveryStatus,
    IdempotencyKey,
    ImmediateSend,
    Notification,
    Platform,
    ScheduledChannel,
    ScheduledNotification,
    ScheduledStatus,
)
from notifications.pipeline import Message, Send, SendResult, notification_send, notification_send_many, send_counts
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


# --- Files --------------------------------------------------------------------


def public_url(name: str, *, base_url: str) -> str:
    """An absolute URL of a stored file, for clients outside this host (push images)."""
    url = default_storage.url(name)
    if url.startswith(("http://", "https://")):
        return url
    base = (getattr(settings, "PUBLIC_BASE_URL", "") or base_url).rstrip("/")
    return f"{base}{url}"


def push_image_store(*, image, base_url: str) -> str:
    head = image.read(16)
    image.seek(0)
    _, ext = image_kind(head)
    name = default_storage.save(posixpath.join("notification_images", f"{uuid.uuid4().hex}{ext}"), image)
    return public_url(name, base_url=base_url)


def attachments_store(*, source: str, files) -> list[Attachment]:
    """The files go with every email of `source`; the email backend attaches them."""
    return [
        Attachment.objects.create(
            source=source,
            file=f,
            filename=posixpath.basename(f.name)[:255] or "attachment",
            content_type=(getattr(f, "content_type", "") or "application/octet-stream")[:100],
        )
        for f in files
    ]


def attachments_delete(*, source: str) -> None:
    for attachment in Attachment.objects.filter(source=source):
        attachment.file.delete(save=False)
        attachment.delete()


# --- Immediate sends ----------------------------------------------------------


@dataclass
class BulkSendResult:
    counts: SendResult
    target_users: int
    image_url: str = ""
    record_id: uuid.UUID | None = None
    # Set when the send named a digest key: where its recipients went.
    digest: DigestOutcome | None = None


@dataclass(frozen=True)
class BulkPreview:
    """Recipients a send resolves to: members and direct addresses of nobody's account."""

    recipients: int
    users: int
    addresses: int


def message_for(channel: str, content: Content, *, image_url: str = "") -> Message:
    short = content.message if channel in (ScheduledChannel.SMS, ScheduledChannel.PUSH) else ""
    return Message(
        title=content.title,
        body=content.message,
        html=content.html if channel == ScheduledChannel.EMAIL else "",
        short_message=short if len(short) <= 1000 else "",
        notification_type=content.notification_type,
        level=content.level,
        image_url=image_url,
    )


def _check_channel_enabled(platform: Platform, channel: str) -> None:
    if channel == ScheduledChannel.PUSH and not platform.push_enabled:
        raise BulkInputError("Push notifications are disabled", "this platform has push notifications turned off")


def bulk_send(*, platform: Platform, data: BulkInput, base_url: str = "", created_by=None) -> BulkSendResult:
    """Send now, through the pipeline; returns the counts of the whole send.

    The send is recorded as an `ImmediateSend` (the admin's send history),
    whose id is the deliveries' source `bulk:<id>`.
    """
    _check_channel_enabled(platform, data.channel)
    recipients, user_count = selectors.recipients_resolve(
        platform=platform, channel=data.channel, targeting=data.targeting
    )
    if not recipients:
        raise BulkInputError("No target users found", "no member of this platform matches user_ids or role")
    channel = DELIVERY_CHANNEL[data.channel]
    if data.digest_key and not digests_apply(
        platform=platform, notification_type=data.content.notification_type, channel=channel
    ):
        raise BulkInputError(
            "Invalid digest_key",
            f"this platform does not digest {data.content.notification_type} on {channel}: add a digest rule first",
        )
    image_url = ""
    if data.channel == ScheduledChannel.PUSH and data.files:
        image_url = push_image_store(image=data.files[0], base_url=base_url)
    record = ImmediateSend.objects.create(
        platform=platform,
        channel=data.channel,
        title=data.content.title[:500],
        message=data.content.message,
        image_url=image_url,
        target_user_ids=list(data.targeting.user_ids),
        target_role=data.targeting.role,
        target_addresses=[*data.targeting.phones, *data.targeting.emails],
        target_users=user_count,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    source = record.source
    if data.channel == ScheduledChannel.EMAIL and data.files:
        attachments_store(source=source, files=data.files)
    digest = None
    if data.digest_key:
        # Each recipient joins their digest of this key; the first of a leading window still goes now.
        digest = digest_join_send(
            DigestRequest(
                platform=platform,
                notification_type=data.content.notification_type,
                channel=channel,
                digest_key=data.digest_key,
                source=source,
                recipients=recipients,
                item={"title": data.content.title, "message": data.content.message},
            )
        )
        recipients = digest.at_once
    counts = notification_send(
        platform=platform,
        source=source,
        channels=[channel],
        recipients=recipients,
        message=message_for(data.channel, data.content, image_url=image_url),
    )
    ImmediateSend.objects.filter(pk=record.pk).update(
        total_recipients=counts.total_recipients, sent_count=counts.sent, failed_count=counts.failed
    )
    return BulkSendResult(
        counts=counts, target_users=user_count, image_url=image_url, record_id=record.pk, digest=digest
    )


def bulk_preview(*, platform: Platform, data: BulkInput) -> BulkPreview:
    """Who a send would reach right now, without sending: the admin's confirmation step."""
    _check_channel_enabled(platform, data.channel)
    recipients, user_count = selectors.recipients_resolve(
        platform=platform, channel=data.channel, targeting=data.targeting
    )
    if not recipients:
        raise BulkInputError("No target users found", "no member of this platform matches user_ids or role")
    return BulkPreview(recipients=len(recipients), users=user_count, addresses=len(recipients) - user_count)


# --- Scheduled jobs: create, edit, cancel --------------------------------------


def _target_raw(data: BulkInput) -> dict:
    raw: dict = {}
    if data.targeting.phones:
        raw["phones"] = list(data.targeting.phones)
    if data.targeting.emails:
        raw["emails"] = list(data.targeting.emails)
    if data.channel == ScheduledChannel.IN_APP:
        raw["type"] = data.content.notification_type
        raw["level"] = data.content.level
    return raw


def _check_reachable(platform: Platform, data: BulkInput) -> None:
    # Resolved again when the job runs; checked now too so that a typo in
    # user_ids is a 400 today rather than a failed job next week.
    if not selectors.targeting_reaches_anyone(platform=platform, targeting=data.targeting):
        raise BulkInputError("No target users found", "no member of this platform matches user_ids or role")


def scheduled_create(
    *, platform: Platform, data: BulkInput, created_by=None, base_url: str = ""
) -> ScheduledNotification:
    """Store a job to run at `data.scheduled_at`; targeting is kept as given."""
    if data.scheduled_at is None:
        raise ValueError("scheduled_create needs scheduled_at")
    _check_channel_enabled(platform, data.channel)
    _check_reachable(platform, data)
    image_url = ""
    if data.channel == ScheduledChannel.PUSH and data.files:
        image_url = push_image_store(image=data.files[0], base_url=base_url)
    with transaction.atomic():
        job = ScheduledNotification.objects.create(
            platform=platform,
            channel=data.channel,
            title=data.content.title,
            message=data.content.message,
            html=data.content.html,
            image_url=image_url,
            scheduled_at=data.scheduled_at,
            due_at=data.scheduled_at,
            target_user_ids=list(data.targeting.user_ids),
            target_role=data.targeting.role,
            target_raw=_target_raw(data),
            created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        )
        if data.channel == ScheduledChannel.EMAIL and data.files:
            attachments_store(source=job.source, files=data.files)
    return job


def job_as_input(job: ScheduledNotification) -> dict:
    """A pending job as the request fields of its channel, for edits that change a few of them."""
    raw = job.target_raw or {}
    fields: dict = {"message": job.message, "user_ids": list(job.target_user_ids or []), "role": job.target_role}
    if job.channel == ScheduledChannel.EMAIL:
        fields.update(subject=job.title, html=job.html, emails=list(raw.get("emails") or []))
    else:
        fields["title"] = job.title
    if job.channel == ScheduledChannel.SMS:
        fields["phone_numbers"] = list(raw.get("phones") or [])
    if job.channel == ScheduledChannel.IN_APP:
        fields.update(type=raw.get("type", "system_alert"), level=raw.get("level", "info"))
    return fields


class JobStateError(Exception):
    """The job is not in a state that allows the change."""


def scheduled_update(
    *, job: ScheduledNotification, data: BulkInput, scheduled_at: datetime, base_url: str = ""
) -> ScheduledNotification:
    """Edit or reschedule a pending job; `data` is the job's fields with the edits applied."""
    platform = job.platform
    _check_channel_enabled(platform, data.channel)
    _check_reachable(platform, data)
    image_url = job.image_url
    if data.channel == ScheduledChannel.PUSH and data.files:
        image_url = push_image_store(image=data.files[0], base_url=base_url)
    with transaction.atomic():
        # Only a job nobody has claimed yet may change under the worker's feet.
        updated = ScheduledNotification.objects.filter(pk=job.pk, status=ScheduledStatus.PENDING).update(
            title=data.content.title,
            message=data.content.message,
            html=data.content.html,
            image_url=image_url,
            scheduled_at=scheduled_at,
            due_at=scheduled_at,
            target_user_ids=list(data.targeting.user_ids),
            target_role=data.targeting.role,
            target_raw=_target_raw(data),
            attempt_count=0,
            last_error="",
            updated_at=timezone.now(),
        )
        if not updated:
            raise JobStateError("Only pending scheduled notifications can be edited")
        if data.channel == ScheduledChannel.EMAIL and data.files:
            attachments_delete(source=job.source)
            attachments_store(source=job.source, files=data.files)
    job.refresh_from_db()
    return job


def scheduled_cancel(*, job: ScheduledNotification) -> ScheduledNotification:
    """Cancel a pending or processing job; a running worker stops before its next batch."""
    now = timezone.now()
    updated = ScheduledNotification.objects.filter(
        pk=job.pk, status__in=[ScheduledStatus.PENDING, ScheduledStatus.PROCESSING]
    ).update(status=ScheduledStatus.CANCELLED, cancelled_at=now, claimed_until=None, updated_at=now)
    if not updated:
        raise JobStateError("Only pending or processing scheduled notifications can be cancelled")
    # Rows a running job already wrote but did not send must not go out later
    # through the pipeline's retry sweep.
    deliveries_cancel(source=job.source)
    job.refresh_from_db()
    return job


# --- Scheduled jobs: the sweep's claim and the worker's run --------------------


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
    )


def _cancelled_meanwhile(job: ScheduledNotification) -> bool:
    """A job cancelled during its run: rows it wrote after the cancel must not go out later."""
    if ScheduledNotification.objects.filter(pk=job.pk, status=ScheduledStatus.CANCELLED).exists():
        deliveries_cancel(source=job.source)
        return True
    return False


# --- The admin's compose form: one send per form -------------------------------

# An admin compose form carries a key of its own from the first page to the
# confirmation; the first confirmed submission holds it, and a second one
# (a double click, a reload, the back button) finds its outcome instead of
# sending again. Stored with the API's Idempotency-Key records, under a prefix
# no API client can collide with.
FORM_KEY_PREFIX = "admin-compose:"
FORM_KEY_TTL = timedelta(hours=24)
FORM_KEY_STALE = timedelta(minutes=10)


@dataclass(frozen=True)
class FormSubmission:
    held: IdempotencyKey | None = None  # this request holds the key: go ahead
    earlier: dict | None = None  # the outcome of the submission that held it first
    in_progress: bool = False  # the first submission is still sending


def form_submission_begin(*, user, form_key: str, path: str) -> FormSubmission:
    key = FORM_KEY_PREFIX + form_key
    held, existing = IdempotencyKey.claim(
        user=user,
        key=key,
        fingerprint=hashlib.sha256(key.encode()).hexdigest(),
        method="POST",
        path=path,
        ttl=FORM_KEY_TTL,
        stale_after=FORM_KEY_STALE,
    )
    if held is not None:
        return FormSubmission(held=held)
    if existing is None or not existing.is_complete:
        return FormSubmission(in_progress=True)
    return FormSubmission(earlier=existing.response_body or {})


def form_submission_outcome(*, user, form_key: str) -> dict | None:
    """What the confirmed submission of this form did, if there was one."""
    record = IdempotencyKey.objects.filter(
        user=user, key=FORM_KEY_PREFIX + form_key, expires_at__gt=timezone.now(), response_status__isnull=False
    ).first()
    return None if record is None else (record.response_body or {})


def form_submission_finish(*, held: IdempotencyKey, outcome: dict) -> None:
    held.response_status = 200
    held.response_body = outcome
    held.save(update_fields=["response_status", "response_body"])


def form_submission_abandon(*, held: IdempotencyKey) -> None:
    """The submission was rejected (bad input): the same form may be corrected and sent."""
    held.delete()


# Uploads of compose forms wait in storage between the form and its
# confirmation; those of forms never confirmed are removed after a day.
COMPOSE_UPLOADS_DIR = "compose-uploads"
COMPOSE_UPLOADS_KEPT = timedelta(hours=24)


def compose_uploads_purge(*, now: datetime | None = None) -> int:
    """Delete staged uploads older than a day; returns how many (any storage with listdir)."""
    before = (now or timezone.now()) - COMPOSE_UPLOADS_KEPT
    deleted = 0
    try:
        users, _ = default_storage.listdir(COMPOSE_UPLOADS_DIR)
    except FileNotFoundError:
        return 0
    for user_dir in users:
        forms, _ = default_storage.listdir(f"{COMPOSE_UPLOADS_DIR}/{user_dir}")
        for form_dir in forms:
            folder = f"{COMPOSE_UPLOADS_DIR}/{user_dir}/{form_dir}"
            for name in default_storage.listdir(folder)[1]:
                path = f"{folder}/{name}"
                if default_storage.get_modified_time(path) < before:
                    default_storage.delete(path)
                    deleted += 1
    return deleted

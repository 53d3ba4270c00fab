"""Scheduled jobs as their owners change them: create, edit or reschedule, cancel.

Targeting is stored as given and resolved again when the job runs
(`job_runs`); only a pending job may be edited.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from notifications.bulk_scheduled import selectors
from notifications.bulk_scheduled.files import attachments_delete, attachments_store, push_image_store
from notifications.bulk_scheduled.inputs import BulkInput, BulkInputError
from notifications.bulk_scheduled.sends import check_channel_enabled
from notifications.models import Platform, ScheduledChannel, ScheduledNotification, ScheduledStatus
from notifications.pipeline.dispatch import deliveries_cancel


def _target_raw(data: BulkInput) -> dict:
    raw: dict = {}
    if data.targeting.phones:
        raw["phones"] = list(data.targeting.phones)
    if data.targeting.emails:
        raw["emails"] = list(data.targeting.emails)
    if data.channel == ScheduledChannel.IN_APP:
        raw["type"] = data.content.notification_type
        raw["level"] = data.content.level
    if data.fallback_channel:
        raw["fallback_channel"] = data.fallback_channel
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
    check_channel_enabled(platform, data.channel, data.fallback_channel)
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
    if raw.get("fallback_channel"):
        fields["fallback_channel"] = raw["fallback_channel"]
    return fields


class JobStateError(Exception):
    """The job is not in a state that allows the change."""


def scheduled_update(
    *, job: ScheduledNotification, data: BulkInput, scheduled_at: datetime, base_url: str = ""
) -> ScheduledNotification:
    """Edit or reschedule a pending job; `data` is the job's fields with the edits applied."""
    platform = job.platform
    check_channel_enabled(platform, data.channel, data.fallback_channel)
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

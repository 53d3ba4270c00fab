"""The task a django-celery-beat clocked entry runs in the baseline: claim one job by id, run it."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from notifications.bulk_scheduled import job_runs
from notifications.models import ScheduledNotification


@shared_task(ignore_result=True)
def run_clocked_job(job_id: int) -> None:
    now = timezone.now()
    claimed = ScheduledNotification.objects.filter(pk=job_id, status="pending").update(
        status="processing",
        claimed_until=now + timedelta(minutes=5),
        processing_started_at=now,
    )
    if claimed:
        job_runs.scheduled_run(job_id=job_id)

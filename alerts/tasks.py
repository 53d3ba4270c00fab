"""Celery tasks of the alerts app."""

from __future__ import annotations

from celery import shared_task

from alerts import services


@shared_task(ignore_result=True)
def archive_read_alerts() -> int:
    """Beat: archive read alerts past ALERTS_ARCHIVE_AFTER_DAYS."""
    return services.alerts_archive()

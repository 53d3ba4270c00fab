"""Bulk sends (SMS, email, push, in-app) now or at a scheduled time, and the scheduled jobs.

`inputs` parses and checks a request once for the API and the admin,
`selectors` resolves recipients and reads jobs, `services` sends now or stores,
claims and runs scheduled jobs through the delivery pipeline.
"""

from __future__ import annotations

SCHEDULED_SOURCE = "scheduled_notifications"


def ready() -> None:
    """Hook the scheduled jobs into the due-work sweep and register the edit permission."""
    from notifications import permissions, scheduler
    from notifications.bulk_scheduled import services

    permissions.register(
        "notifications_scheduled.update", "notifications.scheduled_update", bundles=(permissions.ADMIN,)
    )
    scheduler.register(
        scheduler.DueWorkSource(
            name=SCHEDULED_SOURCE,
            claim=services.scheduled_claim,
            run=lambda item_id: services.scheduled_run(job_id=item_id),
            run_many=lambda item_ids: services.scheduled_run_many(job_ids=item_ids),
            next_due=services.scheduled_next_due,
            oldest_due=services.scheduled_oldest_due,
        )
    )

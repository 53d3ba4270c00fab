"""Bulk sends (SMS, email, push, in-app) now or at a scheduled time, and the scheduled jobs.

`inputs` parses and checks a request once for the API and the admin,
`selectors` resolves recipients and reads jobs. The writes, one job a module:
`sends` sends now (or previews who a send reaches), `jobs` creates, edits and
cancels scheduled jobs, `job_runs` claims and runs them through the delivery
pipeline, `files` stores attachments and push images, `compose` keeps what an
admin compose form needs between its requests. The admin: `compose_admin`
(compose → confirm → send) and `admin` (the job list, send history, keys).
"""

from __future__ import annotations

SCHEDULED_SOURCE = "scheduled_notifications"


def ready() -> None:
    """Hook the scheduled jobs into the due-work sweep and register the edit permission."""
    from notifications import permissions, scheduler
    from notifications.bulk_scheduled import job_runs

    permissions.register(
        "notifications_scheduled.update", "notifications.scheduled_update", bundles=(permissions.ADMIN,)
    )
    scheduler.register(
        scheduler.DueWorkSource(
            name=SCHEDULED_SOURCE,
            claim=job_runs.scheduled_claim,
            run=lambda item_id: job_runs.scheduled_run(job_id=item_id),
            run_many=lambda item_ids: job_runs.scheduled_run_many(job_ids=item_ids),
            next_due=job_runs.scheduled_next_due,
            oldest_due=job_runs.scheduled_oldest_due,
        )
    )

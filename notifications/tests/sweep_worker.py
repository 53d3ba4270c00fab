"""A worker process for the multi-process scheduler tests.

    python -m notifications.tests.sweep_worker [--limit N] [--deadline S]

Runs the real sweep (claim with SKIP LOCKED, then run each claimed job; Celery
is eager in the test settings, so `run_due_item` runs here) until no scheduled
job is pending or processing, then prints one JSON line with what it claimed.
Environment: DATABASE_URL (the test database), BULK_SINK_PATH, and optionally
BULK_TEST_LEASE_SECONDS for short leases.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django

django.setup()

from django.conf import settings  # noqa: E402

from notifications import scheduler  # noqa: E402
from notifications.bulk_scheduled import SCHEDULED_SOURCE  # noqa: E402
from notifications.models import ScheduledNotification  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--deadline", type=float, default=120)
    args = parser.parse_args()

    sink = {"BACKEND": "notifications.tests.sink_backend.FileSinkBackend", "OPTIONS": {}}
    settings.NOTIFICATION_BACKENDS = {**settings.NOTIFICATION_BACKENDS, "sms": sink}
    lease = scheduler.DEFAULT_LEASE
    if os.environ.get("BULK_TEST_LEASE_SECONDS"):
        lease = timedelta(seconds=float(os.environ["BULK_TEST_LEASE_SECONDS"]))
        # The pipeline's own lease on claimed deliveries, shortened the same way.
        settings.NOTIFY_CLAIM_LEASE_SECONDS = lease.total_seconds()

    claimed = 0
    end = time.monotonic() + args.deadline
    while time.monotonic() < end:
        n = scheduler.sweep(limit=args.limit, lease=lease).get(SCHEDULED_SOURCE, 0)
        claimed += n
        if n == 0:
            if not ScheduledNotification.objects.filter(status__in=["pending", "processing"]).exists():
                break
            time.sleep(0.05)
    print(json.dumps({"pid": os.getpid(), "claimed": claimed}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

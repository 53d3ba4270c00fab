"""The NOTIFY_* settings that tune the pipeline, with their defaults (see README)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

# How long a dispatcher owns the rows it claimed.
CLAIM_LEASE = timedelta(minutes=5)
# Pending rows per channel that the caller dispatches itself; above this they
# go to Celery workers (see DISPATCH_TASKS).
SYNC_LIMIT = 200
# Row ids per item of the sweep (due retries, orphaned rows).
DISPATCH_CHUNK = 500
# A large send is queued as at most DISPATCH_TASKS dispatcher tasks, each for a
# range of at least DISPATCH_RANGE of its rows, claimed batch after batch; a
# task hands on to a successor after DISPATCH_TASK_SECONDS.
DISPATCH_TASKS = 8
DISPATCH_RANGE = 5000
DISPATCH_TASK_SECONDS = 60
# Recipients per write transaction, and how many transactions run at once
# (each on its own connection) when a large send is written outside a transaction.
WRITE_CHUNK = 10000
WRITE_THREADS = 2


def setting(name: str, default):
    return getattr(settings, f"NOTIFY_{name}", default)


def lease() -> timedelta:
    return timedelta(seconds=setting("CLAIM_LEASE_SECONDS", CLAIM_LEASE.total_seconds()))

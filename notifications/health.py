"""What /healthz reports: the services the app needs, and whether due work is being done.

A process can answer HTTP while nothing sends: beat stopped, or no worker
consumes the `sweep` queue. So health also reads the age of the last completed
sweep (kept in the shared cache by `scheduler.sweep`) and the oldest due item
no sweep has claimed (each due-work source's `oldest_due`), and fails when
either is past its threshold. Channels on console backends are reported, not
failed: a development install is healthy.
"""

from __future__ import annotations

import time
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.utils import timezone

from notifications import scheduler

# A process that has just started has not seen a sweep yet: it gets the stale
# threshold as grace before "no sweep ever" counts as stalled.
STARTED = time.time()


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        return f"error: {exc.__class__.__name__}"


def _redis() -> str:
    try:
        from config import redis_topology

        client = redis_topology.client(
            settings.REDIS_URL, settings.REDIS_SENTINELS, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
        client.close()
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc.__class__.__name__}"


def sweep_age(now: float | None = None) -> float | None:
    """Seconds since the last completed sweep, or None when none was ever recorded."""
    last = scheduler.last_sweep_at()
    return None if last is None else max((now or time.time()) - last, 0.0)


def due_work_ages(now: datetime | None = None) -> dict[str, float]:
    """Per due-work source, how long its oldest due and unclaimed item has waited (0 when none)."""
    now = now or timezone.now()
    return {
        name: max((now - due).total_seconds(), 0.0) if due is not None else 0.0
        for name, due in scheduler.oldest_due(now=now).items()
    }


def _sweep_section(stale_after: float) -> tuple[str, dict]:
    now = time.time()
    age = sweep_age(now)
    section = {"last_completed_age_seconds": None if age is None else round(age, 3), "stale_after_seconds": stale_after}
    if age is None:
        waited = now - STARTED
        if waited < stale_after:
            return "starting", section
        return f"stalled: no sweep recorded in {waited:.0f} s", section
    if age > stale_after:
        return f"stalled: last sweep {age:.0f} s ago", section
    return "ok", section


def _due_work_section(late_after: float) -> tuple[str, dict]:
    try:
        ages = due_work_ages()
    except Exception as exc:  # noqa: BLE001 - the database check says why
        return f"error: {exc.__class__.__name__}", {"late_after_seconds": late_after}
    oldest = max(ages.values(), default=0.0)
    section = {
        "oldest_age_seconds": round(oldest, 3),
        "late_after_seconds": late_after,
        "oldest_by_source": {name: round(age, 3) for name, age in ages.items()},
    }
    if oldest > late_after:
        late = max(ages, key=ages.get)
        return f"late: {late} has waited {oldest:.0f} s", section
    return "ok", section


def health_report() -> tuple[bool, dict]:
    """(healthy, body) of /healthz."""
    from notifications.backends import channel_backends

    checks = {"database": _database(), "redis": _redis()}
    sweep_check, sweep = _sweep_section(settings.HEALTH_SWEEP_STALE_SECONDS)
    checks["sweep"] = sweep_check
    if checks["database"] == "ok":
        checks["due_work"], due_work = _due_work_section(settings.HEALTH_DUE_WORK_LATE_SECONDS)
    else:
        checks["due_work"], due_work = "unknown: no database", {}
    healthy = all(value in ("ok", "starting") for value in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": checks,
        "sweep": sweep,
        "due_work": due_work,
        "channels": channel_backends(),
    }
    return healthy, body

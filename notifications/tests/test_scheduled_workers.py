"""Real worker processes against PostgreSQL: SKIP LOCKED claims, leases, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from notifications.models import Notification, ScheduledNotification
from notifications.tests.factories import PlatformFactory

ROOT = Path(settings.BASE_DIR)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="SKIP LOCKED claims across processes need PostgreSQL (SQLite has no row locks)",
    ),
]


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _worker(sink: Path, **env) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "BULK_SINK_PATH": str(sink),
        "LOG_LEVEL": "WARNING",
        **{k: str(v) for k, v in env.items()},
    }
    return subprocess.Popen(
        [sys.executable, "-m", "notifications.tests.sweep_worker", "--deadline", "240"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _sink_lines(sink: Path) -> list[tuple[str, str, str]]:
    if not sink.exists():
        return []
    return [tuple(line.split()) for line in sink.read_text().splitlines()]


def _kill_when_held(worker: subprocess.Popen, sink: Path) -> subprocess.Popen:
    """SIGKILL the worker once its sink backend hangs mid-send (see sink_backend.py)."""
    held = Path(str(sink) + ".held")
    deadline = time.monotonic() + 60
    while not held.exists():
        assert worker.poll() is None, worker.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the worker never reached the middle of its work"
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.communicate(timeout=10)
    assert worker.returncode == -signal.SIGKILL
    held.unlink()
    return worker


def _jobs(platform, n: int, *, due, phones_per_job: int = 1) -> list[ScheduledNotification]:
    jobs = [
        ScheduledNotification(
            platform=platform,
            channel="sms",
            message=f"job {i}",
            scheduled_at=due,
            due_at=due,
            target_raw={"phones": [f"+2519{20000000 + i * phones_per_job + k:08d}" for k in range(phones_per_job)]},
        )
        for i in range(n)
    ]
    return ScheduledNotification.objects.bulk_create(jobs)


def test_four_workers_claim_1000_jobs_due_in_the_same_second(tmp_path):
    platform = PlatformFactory(key="acme-learning")
    due = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
    jobs = _jobs(platform, 1000, due=due)
    sink = tmp_path / "sent.log"

    workers = [_worker(sink) for _ in range(4)]
    outputs = []
    for w in workers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-3000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))

    # Every job claimed once in all: the workers' claims add up to 1,000 and each ran exactly one attempt.
    assert sum(o["claimed"] for o in outputs) == 1000
    assert sum(1 for o in outputs if o["claimed"]) >= 2, outputs  # the work was shared
    statuses = Counter(ScheduledNotification.objects.values_list("status", flat=True))
    assert statuses == {"sent": 1000}, statuses
    assert set(ScheduledNotification.objects.values_list("attempt_count", flat=True)) == {1}
    # Each job's one message went out exactly once.
    lines = _sink_lines(sink)
    per_job = Counter(source for source, _, _ in lines)
    assert len(lines) == 1000 and set(per_job.values()) == {1}
    assert set(per_job) == {j.source for j in jobs}
    assert Notification.objects.filter(delivery_status="sent").count() == 1000


def test_a_worker_killed_mid_job_is_resumed_without_double_sends(tmp_path):
    platform = PlatformFactory(key="acme-learning")
    (job,) = _jobs(platform, 1, due=timezone.now() - timedelta(seconds=1), phones_per_job=40)
    sink = tmp_path / "sent.log"
    short = {"BULK_TEST_LEASE_SECONDS": 2, "SCHEDULED_JOB_LEASE_SECONDS": 2, "SCHEDULED_RETRY_BASE_SECONDS": 1}

    doomed = _kill_when_held(_worker(sink, BULK_SINK_HOLD_AFTER=15, **short), sink)

    job.refresh_from_db()
    assert job.status == "processing"
    assert len(_sink_lines(sink)) == 15

    rescuer = _worker(sink, **short)
    out, err = rescuer.communicate(timeout=120)
    assert rescuer.returncode == 0, err[-3000:]

    job.refresh_from_db()
    assert job.status == "sent", (job.status, job.last_error)
    assert job.attempt_count >= 2 and job.sent_count == 40
    lines = _sink_lines(sink)
    per_recipient = Counter(recipient for _, recipient, _ in lines)
    assert len(per_recipient) == 40 and set(per_recipient.values()) == {1}, per_recipient.most_common(3)
    assert {pid for _, _, pid in lines} == {str(doomed.pid), str(json.loads(out.strip().splitlines()[-1])["pid"])}


def test_a_worker_killed_mid_batch_leaves_every_job_to_be_resumed_without_double_sends(tmp_path):
    """One task runs ten jobs as one pipeline call; it dies part-way through their deliveries."""
    platform = PlatformFactory(key="acme-learning")
    jobs = _jobs(platform, 10, due=timezone.now() - timedelta(seconds=1), phones_per_job=4)
    sink = tmp_path / "sent.log"
    short = {
        "BULK_TEST_LEASE_SECONDS": 2,
        "SCHEDULED_JOB_LEASE_SECONDS": 2,
        "SCHEDULED_RETRY_BASE_SECONDS": 1,
        "DUE_WORK_BATCH_SIZE": 10,
    }

    _kill_when_held(_worker(sink, BULK_SINK_HOLD_AFTER=15, **short), sink)
    assert len(_sink_lines(sink)) == 15
    assert set(ScheduledNotification.objects.values_list("status", flat=True)) == {"processing"}

    rescuer = _worker(sink, **short)
    _, err = rescuer.communicate(timeout=120)
    assert rescuer.returncode == 0, err[-3000:]

    assert Counter(ScheduledNotification.objects.values_list("status", flat=True)) == {"sent": 10}
    assert set(ScheduledNotification.objects.values_list("sent_count", flat=True)) == {4}
    lines = _sink_lines(sink)
    per_recipient = Counter((source, recipient) for source, recipient, _ in lines)
    assert len(per_recipient) == 40 and set(per_recipient.values()) == {1}, per_recipient.most_common(3)
    assert {source for source, _ in per_recipient} == {j.source for j in jobs}

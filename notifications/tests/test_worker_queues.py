"""A worker started the usual way, without -Q, runs due work: real Celery worker and beat on PostgreSQL and Redis."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from notifications import scheduler
from notifications.models import Notification, ScheduledNotification
from notifications.tests.test_pipeline_processes import ROOT, _env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "postgresql" not in settings.DATABASES["default"]["ENGINE"],
        reason="the worker needs the test database; SQLite's is in this process's memory",
    ),
]


def test_a_worker_started_without_q_sweeps_and_delivers_a_scheduled_job(platform, tmp_path):
    due = timezone.now() + timedelta(seconds=2)
    job = ScheduledNotification.objects.create(
        platform=platform,
        channel="sms",
        message="Class starts at 9",
        scheduled_at=due,
        due_at=due,
        target_raw={"phones": ["+251911000001"]},
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        # The production settings, not the test ones: Celery is not eager there, so
        # beat's sweep must travel through the `sweep` queue and the job's run
        # through `celery`, and SMS goes to the console backend (no provider key).
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "--concurrency", "1", "-l", "INFO"],
            cwd=ROOT,
            env=_env(DJANGO_SETTINGS_MODULE="config.settings", CELERY_TASK_ALWAYS_EAGER="false", DEBUG="false"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while ScheduledNotification.objects.get(pk=job.pk).status != "sent":
                assert worker.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "the job was never sent:\n" + log_path.read_text()[-3000:]
                time.sleep(0.25)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    output = log_path.read_text()
    # Both queues, though none was named on the command line.
    assert ".> celery " in output and ".> sweep " in output, output[:3000]
    row = Notification.objects.get(source=job.source)
    assert (row.delivery_status, row.address) == ("sent", "+251911000001")
    assert row.provider_message_id == f"console-{row.pk}"
    assert "[sms] to=+251911000001" in output
    assert row.sent_at >= due  # not before its time
    assert scheduler.last_sweep_at() is not None  # and /healthz sees the worker's sweeps

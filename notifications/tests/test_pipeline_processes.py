"""The pipeline across real processes: a dispatcher killed mid-batch, Celery workers on Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from notifications.backends.base import BaseBackend, Result
from notifications.models import Notification
from notifications.pipeline import Message, Recipient, dispatch, notification_send, send_counts, write

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "postgresql" not in settings.DATABASES["default"]["ENGINE"],
        reason="other processes need the test database; SQLite's is in this process's memory",
    ),
]


class JournalBackend(BaseBackend):
    """Appends each delivery it sends to a file, so every process's sends can be counted.

    With NOTIFY_TEST_DIE_AFTER=N the process dies (SIGKILL, no cleanup, no
    finally) when asked to send delivery N+1: a worker killed mid-batch.
    """

    def send_one(self, delivery):
        journal = Path(os.environ["NOTIFY_TEST_JOURNAL"])
        die_after = os.environ.get("NOTIFY_TEST_DIE_AFTER")
        sent = journal.read_text().count("\n") if journal.exists() else 0
        if die_after is not None and sent >= int(die_after):
            os.kill(os.getpid(), signal.SIGKILL)
        with journal.open("a") as fh:
            fh.write(f"{delivery.recipient_key}\n")
        return Result.sent(f"journal-{os.getpid()}")


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def _env(**extra) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        **extra,
    }


DISPATCH_SCRIPT = textwrap.dedent(
    """
    import django
    django.setup()
    from django.conf import settings
    settings.NOTIFICATION_BACKENDS = {
        **settings.NOTIFICATION_BACKENDS,
        "email": {"BACKEND": "notifications.tests.test_pipeline_processes.JournalBackend", "OPTIONS": {}},
    }
    from notifications.pipeline.dispatch import deliveries_dispatch
    deliveries_dispatch(source="bulk:killed", channel="email")
    """
)


def test_a_dispatcher_killed_mid_batch_is_finished_by_the_next_run_once_per_recipient(
    tmp_path, settings, platform, make_user
):
    users = [make_user(f"learner{i}") for i in range(12)]
    write.deliveries_write(
        platform=platform,
        source="bulk:killed",
        channels=["email"],
        recipients=[Recipient(user_id=u.pk) for u in users],
        message=Message(title="Hello", body="World"),
    )
    journal = tmp_path / "journal"
    process = subprocess.run(
        [sys.executable, "-c", DISPATCH_SCRIPT],
        cwd=ROOT,
        env=_env(NOTIFY_TEST_JOURNAL=str(journal), NOTIFY_TEST_DIE_AFTER="5"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert journal.read_text().count("\n") == 5
    counts = send_counts(source="bulk:killed")
    assert (counts.sent, counts.pending) == (5, 7)
    # The dead process's lease still holds: nobody else sends its rows yet.
    settings.NOTIFICATION_BACKENDS = {
        **settings.NOTIFICATION_BACKENDS,
        "email": {"BACKEND": "notifications.tests.test_pipeline_processes.JournalBackend", "OPTIONS": {}},
    }
    os.environ["NOTIFY_TEST_JOURNAL"] = str(journal)
    try:
        assert dispatch.deliveries_dispatch(source="bulk:killed", channel="email") == 0
        # Time passes: the lease runs out and the run again sends the rest.
        Notification.objects.filter(source="bulk:killed", delivery_status="pending").update(
            claimed_until=timezone.now() - timedelta(seconds=1)
        )
        notification_send(
            platform=platform,
            source="bulk:killed",
            channels=["email"],
            recipients=[Recipient(user_id=u.pk) for u in users],
            message=Message(title="Hello", body="World"),
        )
    finally:
        del os.environ["NOTIFY_TEST_JOURNAL"]
    seen = journal.read_text().split()
    assert sorted(seen) == sorted(f"user:{u.pk}" for u in users)  # each exactly once
    assert Notification.objects.filter(source="bulk:killed", delivery_status="sent").count() == 12


@pytest.fixture
def celery_worker(tmp_path):
    """A real Celery worker (two processes) consuming from the test Redis."""
    from config.celery import app

    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--concurrency",
            "2",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
            "-Q",
            "celery",
        ],
        cwd=ROOT,
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False  # this process only produces
    try:
        yield worker
    finally:
        app.conf.task_always_eager = eager
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()


def test_celery_workers_send_a_large_audience_in_parallel_ranges(celery_worker, settings, platform, make_user):
    settings.NOTIFY_SYNC_LIMIT, settings.NOTIFY_DISPATCH_RANGE = 5, 10
    users = [make_user(f"learner{i}") for i in range(45)]
    result = notification_send(
        platform=platform,
        source="bulk:celery",
        channels=["email", "in_app"],
        recipients=[Recipient(user_id=u.pk) for u in users],
        message=Message(title="Hello", body="World"),
        wait=False,
    )
    # In-app went out while writing; email waits for the workers.
    assert (result.source, result.total_recipients, result.per_channel["in_app"]["sent"]) == ("bulk:celery", 45, 45)
    deadline = time.monotonic() + 60
    while send_counts(source="bulk:celery").per_channel["email"]["sent"] < 45:
        assert time.monotonic() < deadline, "the workers did not finish"
        time.sleep(0.2)
    rows = Notification.objects.filter(source="bulk:celery", channel="email")
    # The worker uses the test settings' locmem backend: the provider id shows it sent each.
    assert all(pid == f"locmem-{pk}" for pk, pid in rows.values_list("pk", "provider_message_id"))
    assert rows.filter(attempts=1).count() == 45

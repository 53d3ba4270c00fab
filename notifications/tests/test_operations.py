"""What operators are told: honest send counts, console backends flagged, health and metrics."""

from __future__ import annotations

import json
import socket

import pytest
from fcm_django.models import FCMDevice

from notifications.tests.bulk_helpers import V1, envelope
from notifications.tests.fakes import backend_settings

pytestmark = pytest.mark.django_db

CONSOLE = "notifications.backends.console.ConsoleBackend"


@pytest.fixture
def admin(make_user):
    return make_user("ops", role="ADMIN", admin=True)


@pytest.fixture
def client(api, admin):
    return api(admin)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- honest counts ------------------------------------------------------------------


@pytest.mark.usefixtures("loopback_only")
def test_bulk_email_to_a_server_refusing_connections_is_pending_not_sent_nor_failed(client, make_user, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _closed_port(), 2
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, email="notifications.backends.email.EmailBackend"
    )
    users = [make_user(f"learner{i}", email=f"learner{i}@example.org") for i in range(2)]

    r = client.post(
        f"{V1}/bulk-email",
        {"subject": "Hi", "message": "Hello", "user_ids": json.dumps([u.pk for u in users])},
        format="multipart",
    )

    assert envelope(r, 200, "Bulk email sent") == {"total_recipients": 2, "sent": 0, "failed": 0, "pending": 2}


def test_console_push_counts_device_tokens_and_a_user_without_a_device_is_not_sent(client, make_user, settings, capsys):
    settings.NOTIFICATION_BACKENDS = backend_settings(settings.NOTIFICATION_BACKENDS, push=CONSOLE)
    lonely = make_user("lonely")
    r = client.post(f"{V1}/bulk-push", {"title": "T", "message": "M", "user_ids": f"[{lonely.pk}]"}, format="multipart")
    assert envelope(r, 200, "Bulk push notification sent") == {
        "target_users": 1,
        "sent": 0,
        "failed": 0,
        "image": "",
        "pending": 0,
        "no_device": 1,
    }
    assert capsys.readouterr().out == ""  # nothing "delivered"

    phoned = make_user("phoned")
    for token in ("tok-a", "tok-b"):
        FCMDevice.objects.create(user=phoned, registration_id=token, type="android", active=True)
    FCMDevice.objects.create(user=phoned, registration_id="tok-old", type="android", active=False)
    r = client.post(
        f"{V1}/bulk-push",
        {"title": "T", "message": "M", "user_ids": json.dumps([lonely.pk, phoned.pk])},
        format="multipart",
    )
    data = envelope(r, 200, "Bulk push notification sent")
    assert (data["target_users"], data["sent"], data["failed"], data["no_device"]) == (2, 2, 0, 1)
    assert capsys.readouterr().out.count("[push] to=") == 2  # one line per active device


# --- console backends flagged ---------------------------------------------------------


def test_console_backends_outside_debug_are_a_system_check_warning(settings):
    from notifications.checks import check_channel_backends

    settings.DEBUG = False
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS,
        email="notifications.backends.email.EmailBackend",
        sms=CONSOLE,
        push="notifications.backends.push.FCMBackend",
    )
    warnings = check_channel_backends()
    assert {w.id for w in warnings} == {"notifications.W001"}
    flagged = sorted(w.msg.split()[1] for w in warnings)
    assert flagged == ["email", "sms"]  # push is FCM, in_app its real backend
    assert "AFROMESSAGE_TOKEN" in next(w.hint for w in warnings if " sms " in w.msg)

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert [w.msg.split()[1] for w in check_channel_backends()] == ["sms"]
    settings.DEBUG = True
    assert check_channel_backends() == []


def test_healthz_shows_which_channels_really_deliver(api, settings):
    from notifications import scheduler

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, sms=CONSOLE, email="notifications.backends.email.EmailBackend"
    )
    scheduler.sweep_completed()
    r = api().get("/healthz")
    assert r.status_code == 200, r.json()
    assert r.json()["channels"] == {
        "email": {"backend": "email", "mail_backend": "smtp", "real": True},
        "sms": {"backend": "console", "real": False},
        "push": {"backend": "locmem", "real": False},
        "in_app": {"backend": "inapp", "real": True},
    }


# --- health of due work -----------------------------------------------------------------


def _due_job(platform, *, seconds_ago: float):
    from datetime import timedelta

    from django.utils import timezone

    from notifications.models import ScheduledNotification

    due = timezone.now() - timedelta(seconds=seconds_ago)
    return ScheduledNotification.objects.create(
        platform=platform, channel="sms", message="Hello", target_role="STUDENT", scheduled_at=due, due_at=due
    )


def test_healthz_is_503_when_no_sweep_ran_for_the_threshold(api, settings, monkeypatch):
    import time

    from django.core.cache import cache

    from notifications import health, scheduler

    settings.HEALTH_SWEEP_STALE_SECONDS = 60
    scheduler.sweep_completed()
    r = api().get("/healthz")
    body = r.json()
    assert (r.status_code, body["status"], body["checks"]["sweep"]) == (200, "ok", "ok")
    assert 0 <= body["sweep"]["last_completed_age_seconds"] < 5 and body["sweep"]["stale_after_seconds"] == 60

    cache.set(scheduler.LAST_SWEEP_KEY, time.time() - 61, timeout=None)
    r = api().get("/healthz")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable" and r.json()["checks"]["sweep"].startswith("stalled: last sweep 61 s")

    # Never swept: a process that just started waits out the threshold, then fails.
    cache.delete(scheduler.LAST_SWEEP_KEY)
    monkeypatch.setattr(health, "STARTED", time.time())
    r = api().get("/healthz")
    assert (r.status_code, r.json()["checks"]["sweep"]) == (200, "starting")
    monkeypatch.setattr(health, "STARTED", time.time() - 61)
    r = api().get("/healthz")
    assert r.status_code == 503 and r.json()["checks"]["sweep"].startswith("stalled: no sweep recorded")


def test_healthz_is_503_while_due_work_waits_unclaimed_past_the_threshold(api, settings, platform, make_user):
    from notifications import scheduler

    make_user("student0")
    settings.HEALTH_DUE_WORK_LATE_SECONDS = 120
    scheduler.sweep_completed()
    _due_job(platform, seconds_ago=30)
    r = api().get("/healthz")
    body = r.json()
    assert r.status_code == 200 and 29 < body["due_work"]["oldest_by_source"]["scheduled_notifications"] < 40
    assert set(body["due_work"]["oldest_by_source"]) == {
        "deliveries",
        "scheduled_notifications",
        "alerts",
        "builder.builds",
        "proactive_learner",
    }

    job = _due_job(platform, seconds_ago=300)
    r = api().get("/healthz")
    assert r.status_code == 503
    assert r.json()["checks"]["due_work"].startswith("late: scheduled_notifications has waited 300 s")

    scheduler.sweep()  # Celery is eager in tests: the claimed jobs run here
    job.refresh_from_db()
    assert job.status == "sent"
    r = api().get("/healthz")
    assert r.status_code == 200 and r.json()["due_work"]["oldest_age_seconds"] == 0


def test_due_retries_alerts_and_builds_count_as_due_work(platform, make_user):
    from datetime import timedelta

    from django.utils import timezone

    from alerts.models import Alert
    from notifications.health import due_work_ages
    from notifications.models import Notification
    from notifications.services import Message, Recipient, deliveries_write

    user = make_user("learner")
    now = timezone.now()
    deliveries_write(
        platform=platform,
        source="bulk:x",
        channels=["sms"],
        recipients=[Recipient(address="+251911000000")],
        message=Message(body="Hi"),
    )
    Notification.objects.filter(source="bulk:x").update(attempts=1, next_attempt_at=now - timedelta(seconds=50))
    Alert.objects.create(
        platform=platform,
        user=user,
        title="T",
        message="M",
        notify_at=now - timedelta(seconds=70),
        due_at=now - timedelta(seconds=70),
    )
    ages = due_work_ages(now)
    assert 49 < ages["deliveries"] < 51 and 69 < ages["alerts"] < 71
    assert ages["scheduled_notifications"] == ages["builder.builds"] == 0

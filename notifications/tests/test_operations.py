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

    assert envelope(r, 200, "Bulk email sent") == {
        "total_recipients": 2,
        "sent": 0,
        "failed": 0,
        "pending": 2,
        "suppressed": 0,
    }


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
        "suppressed": 0,
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


def test_bad_metrics_networks_are_a_system_check_error(settings):
    from notifications.checks import check_metrics_networks

    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "::1", "localhost"]
    assert [e.id for e in check_metrics_networks()] == ["notifications.E001"]


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
        "escalations",
        "digests",
        "webhooks",
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
    from notifications.pipeline import Message, Recipient
    from notifications.pipeline.write import deliveries_write

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


# --- /metrics -------------------------------------------------------------------------------


def scrape(client=None, **extra) -> dict:
    """{(name, labels...): value} of one scrape of /metrics from loopback."""
    from django.test import Client
    from prometheus_client.parser import text_string_to_metric_families

    r = (client or Client()).get("/metrics", **extra)
    assert r.status_code == 200, r.content[:500]
    assert r["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(r.content.decode()):
        for sample in family.samples:
            samples[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return samples


def delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, *sorted(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_deliveries_by_channel_and_outcome_and_time_providers(
    client, make_user, settings, django_capture_on_commit_callbacks
):
    from notifications.backends import locmem

    students = [make_user(f"student{i}", phone_number=f"+25191100000{i}") for i in range(3)]
    locmem.fail_for[students[0].phone_number] = "Invalid number"
    before = scrape()

    r = client.post(f"{V1}/bulk-sms", {"message": "Hi", "role": "STUDENT"}, format="json")
    assert envelope(r, 200, "Bulk SMS sent") == {
        "total_recipients": 3,
        "sent": 2,
        "failed": 1,
        "pending": 0,
        "suppressed": 0,
    }
    # In-app rows are delivered as they are written: counted once their transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"{V1}/bulk-in-app", {"title": "T", "message": "M", "role": "STUDENT"}, format="json")
    assert envelope(r, 200, "Bulk in-app notification sent")["sent"] == 3

    after = scrape()
    assert delta(before, after, "notify_deliveries_total", channel="sms", outcome="sent") == 2
    assert delta(before, after, "notify_deliveries_total", channel="sms", outcome="failed") == 1
    assert delta(before, after, "notify_deliveries_total", channel="in_app", outcome="sent") == 3
    # The locmem backend decides its batch at once: one provider call for the three.
    latency = {"channel": "sms", "backend": "locmem"}
    assert delta(before, after, "notify_provider_latency_seconds_count", **latency) == 1
    assert delta(before, after, "notify_provider_latency_seconds_bucket", le="+Inf", **latency) == 1
    assert delta(before, after, "notify_provider_latency_seconds_sum", **latency) >= 0
    # HTTP latency by route pattern.
    route = {"method": "POST", "route": "/api/v1/notifications/bulk-sms", "status": "200"}
    assert delta(before, after, "notify_http_request_duration_seconds_count", **route) == 1


@pytest.mark.usefixtures("loopback_only")
def test_metrics_show_retries_waiting(client, make_user, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _closed_port(), 2
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, email="notifications.backends.email.EmailBackend"
    )
    users = [make_user(f"learner{i}", email=f"learner{i}@example.org") for i in range(2)]
    before = scrape()
    client.post(
        f"{V1}/bulk-email",
        {"subject": "Hi", "message": "Hello", "user_ids": json.dumps([u.pk for u in users])},
        format="multipart",
    )
    after = scrape()
    assert delta(before, after, "notify_deliveries_total", channel="email", outcome="retry") == 2
    assert after[("notify_delivery_retries_waiting", ("channel", "email"))] == 2
    assert delta(before, after, "notify_provider_latency_seconds_count", channel="email", backend="email") == 2


def test_metrics_label_http_latency_with_the_route_pattern_not_the_path(client):
    from django.test import Client

    before = scrape()
    for pk in (101, 102, 103):
        client.get(f"{V1}/scheduled/{pk}")
    Client().get("/no/such/page/12345")
    after = scrape()
    pattern = {"method": "GET", "route": "/api/v1/notifications/scheduled/<id:pk>", "status": "404"}
    assert delta(before, after, "notify_http_request_duration_seconds_count", **pattern) == 3
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert delta(before, after, "notify_http_request_duration_seconds_count", **unmatched) == 1
    assert not any("101" in str(key) or "12345" in str(key) for key in after)


def test_metrics_gauges_for_sweep_age_and_due_work(platform, make_user):
    import time

    from django.core.cache import cache

    from notifications import scheduler

    make_user("student0")
    assert scrape()[("notify_sweep_age_seconds",)] == float("inf")
    cache.set(scheduler.LAST_SWEEP_KEY, time.time() - 42, timeout=None)
    _due_job(platform, seconds_ago=90)
    samples = scrape()
    assert 42 <= samples[("notify_sweep_age_seconds",)] < 50
    assert 90 <= samples[("notify_due_work_oldest_seconds", ("source", "scheduled_notifications"))] < 100
    assert samples[("notify_due_work_oldest_seconds", ("source", "alerts"))] == 0


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_metrics_count_open_websockets_of_live_processes(live_url, make_user):
    import time
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families
    from websockets.sync.client import connect

    from notifications import metrics
    from notifications.models import AuthToken

    def open_sockets() -> float:
        with urllib.request.urlopen(f"{live_url}/metrics", timeout=10) as response:
            text = response.read().decode()
        (family,) = [f for f in text_string_to_metric_families(text) if f.name == "notify_websocket_connections"]
        return family.samples[0].value

    _, token = AuthToken.issue(user=make_user("jane"), name="phone")
    url = live_url.replace("http://", "ws://") + "/api/v1/ws/connect?token=" + token
    base = open_sockets()
    with connect(url) as first, connect(url):
        first.send('{"type": "PING"}')
        assert "PONG" in first.recv(timeout=10)
        assert open_sockets() == base + 2
    deadline = time.monotonic() + 10
    while open_sockets() != base:  # the server notices the close a moment later
        assert time.monotonic() < deadline
        time.sleep(0.1)

    # Another process that stopped renewing its count (it crashed) drops out.
    client = metrics._redis()
    client.hset(metrics._key("websockets"), "gone-host:1:1", 7)
    client.hset(metrics._key("websockets:seen"), "gone-host:1:1", time.time() - 3600)
    assert open_sockets() == base
    assert not client.hexists(metrics._key("websockets"), "gone-host:1:1")


def test_metrics_need_the_token_or_a_direct_connection_from_an_allowed_network(settings):
    from django.test import Client

    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 403
    # Through a proxy on this host every client looks like loopback: the address proves nothing.
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403

    settings.METRICS_TOKEN = "s3cret-scrape-token"
    settings.METRICS_ALLOWED_NETWORKS = []
    outside = Client(REMOTE_ADDR="203.0.113.9")
    r = outside.get("/metrics")
    assert (r.status_code, r["WWW-Authenticate"]) == (401, 'Bearer realm="metrics"')
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 401
    r = outside.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert r.status_code == 200 and b"notify_deliveries_total" in r.content

    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200

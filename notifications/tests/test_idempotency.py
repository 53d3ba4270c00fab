"""Idempotency-Key on the send endpoints: replay, 422 on another body, 409 while running, 24 h."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from notifications.backends import locmem
from notifications.models import IdempotencyKey, Membership, Notification, ScheduledNotification, User
from notifications.tests.bulk_helpers import PNG, V1, envelope, error, future
from notifications.tests.factories import PlatformFactory

pytestmark = pytest.mark.django_db

BODY = {"message": "Hello", "role": "STUDENT"}


@pytest.fixture
def client(api, make_user):
    for i in range(3):
        make_user(f"student{i}", role="STUDENT")
    return api(make_user("ops", role="ADMIN", admin=True))


def test_replay_returns_the_first_response_and_sends_once(client):
    first = client.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert envelope(first, 200, "Bulk SMS sent") == envelope(again, 200, "Bulk SMS sent")
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert len(locmem.outbox["sms"]) == 3


def test_replay_of_a_schedule_creates_one_job(client):
    body = {**BODY, "scheduled_at": future()}
    a = client.post(f"{V1}/bulk-sms", body, format="json", HTTP_IDEMPOTENCY_KEY="job-1")
    b = client.post(f"{V1}/bulk-sms", body, format="json", HTTP_IDEMPOTENCY_KEY="job-1")
    assert a.status_code == b.status_code == 201 and a.json() == b.json()
    assert ScheduledNotification.objects.count() == 1


def test_same_key_other_body_is_422(client):
    client.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    r = client.post(f"{V1}/bulk-sms", {**BODY, "message": "Other"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    error(r, 422, "Idempotency-Key reused with a different request")
    r = client.post(f"{V1}/bulk-in-app", {"title": "T", **BODY}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    error(r, 422, "Idempotency-Key reused with a different request")
    assert len(locmem.outbox["sms"]) == 3


def test_key_order_does_not_matter(client):
    client.post(f"{V1}/bulk-sms", {"message": "Hello", "role": "STUDENT"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    r = client.generic(
        "POST",
        f"{V1}/bulk-sms",
        '{"role":"STUDENT",  "message":"Hello"}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert r.status_code == 200 and r["Idempotent-Replayed"] == "true"


def test_multipart_bodies_and_files_are_fingerprinted(client):
    def post(image):
        return client.post(
            f"{V1}/bulk-push",
            {"title": "T", "message": "M", "role": "STUDENT", "file": SimpleUploadedFile("a.png", image)},
            format="multipart",
            HTTP_IDEMPOTENCY_KEY="push-1",
        )

    first = post(PNG)
    assert first.status_code == 200
    assert post(PNG).json() == first.json()
    error(post(PNG + b"\x00"), 422, "Idempotency-Key reused with a different request")


def test_keys_are_per_user(client, api, make_user):
    other = api(make_user("ops2", role="ADMIN", admin=True))
    client.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    r = other.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert r.status_code == 200 and "Idempotent-Replayed" not in r
    assert len(locmem.outbox["sms"]) == 6


def test_a_rejected_request_frees_its_key(client):
    error(
        client.post(f"{V1}/bulk-sms", {"role": "STUDENT"}, format="json", HTTP_IDEMPOTENCY_KEY="fix-me"),
        400,
        "Message is required",
    )
    r = client.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="fix-me")
    assert envelope(r, 200, "Bulk SMS sent")["sent"] == 3


def test_keys_expire_after_24_hours(client):
    client.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="old")
    record = IdempotencyKey.objects.get(key="old")
    assert timedelta(hours=23, minutes=59) < record.expires_at - record.created_at <= timedelta(hours=24)
    IdempotencyKey.objects.filter(pk=record.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    r = client.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="old")
    assert r.status_code == 200 and "Idempotent-Replayed" not in r
    assert len(locmem.outbox["sms"]) == 6
    IdempotencyKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert IdempotencyKey.purge_expired() == 1 and not IdempotencyKey.objects.exists()


def test_cancel_honours_the_key(client):
    job = client.post(f"{V1}/bulk-sms", {**BODY, "scheduled_at": future()}, format="json").json()["data"]
    a = client.post(f"{V1}/scheduled/{job['id']}/cancel", HTTP_IDEMPOTENCY_KEY="c")
    b = client.post(f"{V1}/scheduled/{job['id']}/cancel", HTTP_IDEMPOTENCY_KEY="c")
    assert a.status_code == b.status_code == 200 and a.json() == b.json()


def test_overlong_key_is_400(client):
    error(
        client.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="x" * 256),
        400,
        "Invalid Idempotency-Key",
    )


class Gate(locmem.LocmemBackend):
    """Holds the first send until the test opens the gate."""

    entered = threading.Event()
    release = threading.Event()

    def send_one(self, delivery):
        Gate.entered.set()
        assert Gate.release.wait(timeout=30)
        return super().send_one(delivery)


@pytest.mark.django_db(transaction=True)
def test_replay_while_the_first_is_running_is_409(api, make_user, settings):
    settings.NOTIFICATION_BACKENDS = {
        **settings.NOTIFICATION_BACKENDS,
        "sms": {"BACKEND": "notifications.tests.test_idempotency.Gate", "OPTIONS": {}},
    }
    Gate.entered.clear()
    Gate.release.clear()
    make_user("student", role="STUDENT")
    admin = make_user("ops", role="ADMIN", admin=True)
    first_client, second_client = api(admin), api(admin)
    results = {}

    def first():
        try:
            results["first"] = first_client.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="slow")
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert Gate.entered.wait(timeout=30)
        r = second_client.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="slow")
        error(r, 409, "Request with this Idempotency-Key is in progress")
    finally:
        Gate.release.set()
        thread.join(timeout=30)
    assert envelope(results["first"], 200, "Bulk SMS sent")["sent"] == 1
    replay = second_client.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="slow")
    assert replay.json() == results["first"].json()
    assert Notification.objects.filter(delivery_status="sent").count() == 1


def test_a_key_never_answers_for_another_platform(client, make_user):
    """The same user and key with another `X-Platform` is refused, not served platform A's response."""
    other = PlatformFactory(key="other-school")
    ops = User.objects.get(username="ops")
    Membership.objects.create(user=ops, platform=other, role="ADMIN", is_platform_admin=True)
    make_user("b-student", role="STUDENT", plat=other)
    first = client.post(
        f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k", HTTP_X_PLATFORM="acme-learning"
    )
    assert envelope(first, 200, "Bulk SMS sent")["sent"] == 3
    r = client.post(f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k", HTTP_X_PLATFORM="other-school")
    error(r, 422, "Idempotency-Key reused with a different request")
    assert "Idempotent-Replayed" not in r and len(locmem.outbox["sms"]) == 3
    # A's own retry is still a replay.
    again = client.post(
        f"{V1}/bulk-sms", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k", HTTP_X_PLATFORM="acme-learning"
    )
    assert again["Idempotent-Replayed"] == "true"

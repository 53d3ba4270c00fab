"""`fallback_channel` on the bulk endpoints and scheduled jobs (an addition to the bulk document)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fcm_django.models import FCMDevice

from notifications import scheduler
from notifications.backends import locmem
from notifications.models import ImmediateSend, Notification, ScheduledNotification
from notifications.tests.bulk_helpers import V1, envelope, error, future

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(make_user):
    return make_user("ops", role="ADMIN", admin=True)


@pytest.fixture
def client(api, admin):
    return api(admin)


@pytest.fixture
def students(make_user):
    """Three students; only the first has a push device."""
    people = [make_user(f"student{i}", role="STUDENT", phone_number=f"+25191100000{i}") for i in range(3)]
    FCMDevice.objects.create(user=people[0], registration_id="tok-0", type="android", active=True, name="tok-0")
    return people


def test_bulk_push_falls_back_to_sms_for_students_without_a_device(client, students):
    r = client.post(
        f"{V1}/bulk-push",
        {"title": "Exam", "message": "Exam at 9:00.", "role": "STUDENT", "fallback_channel": "sms"},
        format="multipart",
    )

    data = envelope(r, 200, "Bulk push notification sent")
    assert data["target_users"] == 3
    assert data["no_device"] == 2
    assert sorted(m["address"] for m in locmem.outbox["sms"]) == ["+251911000001", "+251911000002"]
    assert [m["body"] for m in locmem.outbox["sms"]] == ["Exam at 9:00.", "Exam at 9:00."]
    source = ImmediateSend.objects.get().source
    fallbacks = Notification.objects.filter(source=source, channel="sms")
    assert {n.rule for n in fallbacks} == {"fallback"}
    assert fallbacks.count() == 2


def test_scheduled_job_keeps_its_fallback_and_uses_it_when_it_runs(client, students):
    job = envelope(
        client.post(
            f"{V1}/bulk-push",
            {
                "title": "Exam",
                "message": "Exam at 9:00.",
                "role": "STUDENT",
                "fallback_channel": "sms",
                "scheduled_at": future(),
            },
            format="multipart",
        ),
        201,
        "Push notification scheduled",
    )
    assert job["target_raw"]["fallback_channel"] == "sms"

    stored = ScheduledNotification.objects.get(pk=job["id"])
    scheduler.sweep(now=stored.due_at + timedelta(seconds=1))

    assert len(locmem.outbox["sms"]) == 2
    r = client.get(f"{V1}/scheduled/{job['id']}/deliveries")
    rows = r.json()["deliveries"]
    assert sorted((d["channel"], d["rule"], d["status"]) for d in rows) == [
        ("push", "", "failed"),
        ("push", "", "failed"),
        ("push", "", "sent"),
        ("sms", "fallback", "sent"),
        ("sms", "fallback", "sent"),
    ]

    # An edit that removes it: the job's fallback is gone.
    later = envelope(
        client.post(
            f"{V1}/bulk-sms",
            {"message": "Reminder", "role": "STUDENT", "fallback_channel": "email", "scheduled_at": future()},
            format="json",
        ),
        201,
        "SMS scheduled",
    )
    r = client.patch(f"{V1}/scheduled/{later['id']}", {"fallback_channel": ""}, format="json")
    assert "fallback_channel" not in envelope(r, 200, "Scheduled notification updated")["target_raw"]


@pytest.mark.parametrize(
    ("path", "body", "fmt"),
    [
        ("bulk-push", {"title": "T", "message": "M", "role": "STUDENT", "fallback_channel": "fax"}, "multipart"),
        ("bulk-push", {"title": "T", "message": "M", "role": "STUDENT", "fallback_channel": "push"}, "multipart"),
        ("bulk-sms", {"message": "M", "role": "STUDENT", "fallback_channel": ["email"]}, "json"),
        ("bulk-in-app", {"title": "T", "message": "M", "role": "STUDENT", "fallback_channel": "email"}, "json"),
    ],
)
def test_a_bad_fallback_channel_is_a_400_and_sends_nothing(client, students, path, body, fmt):
    r = client.post(f"{V1}/{path}", body, format=fmt)

    error(r, 400, "Invalid fallback_channel")
    assert not Notification.objects.exists()
    assert not ImmediateSend.objects.exists()
    assert not ScheduledNotification.objects.exists()


def test_fallback_to_push_on_a_platform_without_push_is_a_400(client, students, platform):
    platform.push_enabled = False
    platform.save()
    r = client.post(f"{V1}/bulk-sms", {"message": "M", "role": "STUDENT", "fallback_channel": "push"}, format="json")
    assert "push" in error(r, 400, "Invalid fallback_channel")["error"]
    assert not Notification.objects.exists()

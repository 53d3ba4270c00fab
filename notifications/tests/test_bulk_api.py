"""The bulk document's endpoints, example by example (sections 6-13)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from notifications import scheduler
from notifications.backends import locmem
from notifications.models import Attachment, Notification, ScheduledNotification
from notifications.realtime import user_group
from notifications.tests.bulk_helpers import JOB_KEYS, PNG, V1, envelope, error, future, grant
from notifications.tests.factories import PlatformFactory, make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(make_user):
    return make_user("ops", role="ADMIN", admin=True)


@pytest.fixture
def client(api, admin):
    return api(admin)


@pytest.fixture
def students(make_user):
    return [make_user(f"student{i}", role="STUDENT") for i in range(3)]


@pytest.fixture
def outsider():
    """A student of another platform: never reached by our sends."""
    return make_member(platform=PlatformFactory(key="other-school"), username="outsider", role="STUDENT")


def run_due(job_id: int) -> ScheduledNotification:
    """Let the sweep find the job as if its time had come, and run it."""
    job = ScheduledNotification.objects.get(pk=job_id)
    scheduler.sweep(now=job.due_at + timedelta(seconds=1))
    job.refresh_from_db()
    return job


# --- Bulk SMS (§6) -------------------------------------------------------------


def test_sms_immediate_by_role(client, students, outsider, admin):
    r = client.post(
        f"{V1}/bulk-sms", {"message": "Your subscription expires tomorrow.", "role": "STUDENT"}, format="json"
    )
    assert envelope(r, 200, "Bulk SMS sent") == {
        "total_recipients": 3,
        "sent": 3,
        "failed": 0,
        "pending": 0,
        "suppressed": 0,
    }
    sent_to = sorted(m["address"] for m in locmem.outbox["sms"])
    assert sent_to == sorted(s.phone_number for s in students)
    assert all(m["body"] == "Your subscription expires tomorrow." for m in locmem.outbox["sms"])
    assert outsider.phone_number not in sent_to and admin.phone_number not in sent_to


def test_sms_scheduled_with_user_ids(client, students, admin):
    ids = [s.pk for s in students]
    when = "2030-06-15T08:00:00Z"  # the document's time of day, in a year still ahead
    r = client.post(
        f"{V1}/bulk-sms",
        {"message": "Reminder: class starts at 9 AM.", "user_ids": ids, "scheduled_at": when},
        format="json",
    )
    data = envelope(r, 201, "SMS scheduled")
    assert set(data) == JOB_KEYS
    assert data["channel"] == "sms" and data["status"] == "pending"
    assert data["scheduled_at"] == "2030-06-15T08:00:00.000Z"
    assert data["target_user_ids"] == ids and data["target_role"] == "" and data["target_raw"] == {}
    assert data["message"] == "Reminder: class starts at 9 AM." and data["title"] == "" and data["html"] == ""
    assert data["attempt_count"] == 0 and data["last_error"] == ""
    assert data["processing_started_at"] is None and data["sent_at"] is None and data["cancelled_at"] is None
    assert data["created_by"] == admin.pk
    assert data["created_at"].endswith("Z") and data["updated_at"].endswith("Z")
    assert locmem.outbox["sms"] == []  # nothing goes out before its time

    job = run_due(data["id"])
    assert job.status == "sent" and job.attempt_count == 1 and job.sent_at is not None
    assert sorted(m["address"] for m in locmem.outbox["sms"]) == sorted(s.phone_number for s in students)


def test_sms_scheduled_with_direct_phones(client):
    r = client.post(
        f"{V1}/bulk-sms",
        {"message": "Welcome to Yimaru!", "phone_numbers": ["+251911000000"], "scheduled_at": "2030-06-15T09:00:00Z"},
        format="json",
    )
    data = envelope(r, 201, "SMS scheduled")
    assert data["target_raw"] == {"phones": ["+251911000000"]} and data["target_user_ids"] == []
    job = run_due(data["id"])
    assert job.status == "sent"
    assert [m["address"] for m in locmem.outbox["sms"]] == ["+251911000000"]
    delivery = Notification.objects.get(source=f"scheduled:{job.pk}")
    assert delivery.recipient_key == "phone:+251911000000" and delivery.user is None


def test_sms_union_is_deduplicated(client, students, make_user):
    teacher = make_user("teacher", role="INSTRUCTOR")
    body = {
        "message": "Hello",
        "role": "STUDENT",
        "user_ids": [students[0].pk, teacher.pk],
        # One belongs to a targeted student, one is local-format, one is a stranger's.
        "phone_numbers": [students[1].phone_number, "0911223344", "+251911223344"],
    }
    r = client.post(f"{V1}/bulk-sms", body, format="json")
    # 3 students + the teacher + one stranger (0911223344 and +251911223344 are one number).
    assert envelope(r, 200, "Bulk SMS sent") == {
        "total_recipients": 5,
        "sent": 5,
        "failed": 0,
        "pending": 0,
        "suppressed": 0,
    }
    addresses = [m["address"] for m in locmem.outbox["sms"]]
    assert len(addresses) == len(set(addresses)) == 5


def test_sms_partial_failure_is_still_200(client, students):
    locmem.fail_for[students[0].phone_number] = "Invalid destination"
    r = client.post(f"{V1}/bulk-sms", {"message": "Hi", "role": "STUDENT"}, format="json")
    assert envelope(r, 200, "Bulk SMS sent") == {
        "total_recipients": 3,
        "sent": 2,
        "failed": 1,
        "pending": 0,
        "suppressed": 0,
    }


def test_user_without_phone_counts_as_failed(client, make_user):
    make_user("nophone", role="STUDENT", phone_number="")
    r = client.post(f"{V1}/bulk-sms", {"message": "Hi", "role": "STUDENT"}, format="json")
    assert envelope(r, 200, "Bulk SMS sent") == {
        "total_recipients": 1,
        "sent": 0,
        "failed": 1,
        "pending": 0,
        "suppressed": 0,
    }


# --- Bulk email (§7) -----------------------------------------------------------


def test_email_immediate_multipart_with_attachment(client, students):
    banner = SimpleUploadedFile("banner.png", PNG, content_type="image/png")
    r = client.post(
        f"{V1}/bulk-email",
        {
            "subject": "New course available",
            "html": "<p>Check out our new module!</p>",
            "role": "STUDENT",
            "file": banner,
        },
        format="multipart",
    )
    assert envelope(r, 200, "Bulk email sent") == {
        "total_recipients": 3,
        "sent": 3,
        "failed": 0,
        "pending": 0,
        "suppressed": 0,
    }
    sent = locmem.outbox["email"]
    assert sorted(m["address"] for m in sent) == sorted(s.email for s in students)
    assert {m["title"] for m in sent} == {"New course available"}
    assert {m["html"] for m in sent} == {"<p>Check out our new module!</p>"}
    # The email backend attaches the send's files: one Attachment per source.
    attachment = Attachment.objects.get(source=sent[0]["source"])
    assert attachment.filename == "banner.png" and attachment.content_type == "image/png"
    with attachment.file.open("rb") as f:
        assert f.read() == PNG


def test_email_scheduled_keeps_attachments(client):
    r = client.post(
        f"{V1}/bulk-email",
        {
            "subject": "Weekly digest",
            "message": "Here is your weekly summary.",
            "emails": json.dumps(["admin@example.com", "user@example.com"]),
            "scheduled_at": "2030-06-15T09:00:00Z",
            "file": SimpleUploadedFile("summary.txt", b"numbers", content_type="text/plain"),
        },
        format="multipart",
    )
    data = envelope(r, 201, "Email scheduled")
    assert {k: data[k] for k in ("channel", "title", "message", "html", "scheduled_at", "status", "target_raw")} == {
        "channel": "email",
        "title": "Weekly digest",
        "message": "Here is your weekly summary.",
        "html": "",
        "scheduled_at": "2030-06-15T09:00:00.000Z",
        "status": "pending",
        "target_raw": {"emails": ["admin@example.com", "user@example.com"]},
    }
    with Attachment.objects.get(source=f"scheduled:{data['id']}").file.open("rb") as f:
        assert f.read() == b"numbers"
    job = run_due(data["id"])
    assert job.status == "sent"
    assert sorted(m["address"] for m in locmem.outbox["email"]) == ["admin@example.com", "user@example.com"]
    assert {m["source"] for m in locmem.outbox["email"]} == {f"scheduled:{job.pk}"}


def test_email_needs_subject_and_a_body(client, students):
    r = client.post(f"{V1}/bulk-email", {"message": "x", "role": "STUDENT"}, format="multipart")
    error(r, 400, "Subject is required")
    r = client.post(f"{V1}/bulk-email", {"subject": "x", "role": "STUDENT"}, format="multipart")
    error(r, 400, "Message is required")
    r = client.post(f"{V1}/bulk-email", {"subject": "x", "message": "y", "emails": '["nope"]'}, format="multipart")
    error(r, 400, "Invalid email address")
    r = client.post(f"{V1}/bulk-email", {"subject": "x", "message": "y", "emails": "a@b.com"}, format="multipart")
    error(r, 400, "Invalid emails format")


# --- Bulk push (§8) ------------------------------------------------------------


def test_push_immediate_with_image(client, students):
    ids = json.dumps([s.pk for s in students])
    r = client.post(
        f"{V1}/bulk-push",
        {
            "title": "Practice reminder",
            "message": "Complete today's practice.",
            "user_ids": ids,
            "file": SimpleUploadedFile("thumb.jpg", PNG, content_type="image/png"),
        },
        format="multipart",
    )
    data = envelope(r, 200, "Bulk push notification sent")
    assert set(data) == {"target_users", "sent", "failed", "image", "pending", "no_device", "suppressed"}
    assert (data["target_users"], data["sent"], data["failed"]) == (3, 3, 0)
    assert data["image"].startswith("http://testserver/media/notification_images/") and data["image"].endswith(".png")
    name = data["image"].removeprefix("http://testserver/media/")
    with default_storage.open(name) as f:
        assert f.read() == PNG
    rows = Notification.objects.filter(channel="push_notification")
    assert rows.count() == 3 and {r.image_url for r in rows} == {data["image"]}


def test_push_counts_device_tokens(client, students, settings):
    """`sent`/`failed` count device tokens (the backend's units), not users."""
    settings.NOTIFICATION_BACKENDS = {
        **settings.NOTIFICATION_BACKENDS,
        "push": {"BACKEND": "notifications.tests.test_bulk_api.TwoDevicesPush", "OPTIONS": {}},
    }
    r = client.post(f"{V1}/bulk-push", {"title": "T", "message": "M", "role": "STUDENT"}, format="multipart")
    assert envelope(r, 200, "Bulk push notification sent") == {
        "target_users": 3,
        "sent": 5,
        "failed": 1,
        "image": "",
        "pending": 0,
        "no_device": 0,
        "suppressed": 0,
    }


class TwoDevicesPush(locmem.LocmemBackend):
    """Every user has two devices; the first user's second device is unregistered."""

    def send_one(self, delivery):
        from notifications.backends.base import Result

        first = delivery.user_id == type(self).first_user_id(delivery)
        return Result(ok=True, units_sent=1 if first else 2, units_failed=1 if first else 0)

    @staticmethod
    def first_user_id(delivery):
        return (
            Notification.objects.filter(source=delivery.source).order_by("user_id").values_list("user_id", flat=True)[0]
        )


def test_push_public_base_url(client, students, settings):
    settings.PUBLIC_BASE_URL = "https://api.example.com"
    r = client.post(
        f"{V1}/bulk-push",
        {"title": "T", "message": "M", "role": "STUDENT", "file": SimpleUploadedFile("a.png", PNG)},
        format="multipart",
    )
    assert envelope(r, 200, "Bulk push notification sent")["image"].startswith(
        "https://api.example.com/media/notification_images/"
    )


def test_push_scheduled_keeps_image(client, students):
    r = client.post(
        f"{V1}/bulk-push",
        {
            "title": "Exam tomorrow",
            "message": "Don't forget to review Unit 3.",
            "role": "STUDENT",
            "scheduled_at": "2030-06-14T18:00:00Z",
            "file": SimpleUploadedFile("thumb.png", PNG),
        },
        format="multipart",
    )
    data = envelope(r, 201, "Push notification scheduled")
    assert set(data) == JOB_KEYS
    assert data["channel"] == "push" and data["target_role"] == "STUDENT" and data["title"] == "Exam tomorrow"
    job = run_due(data["id"])
    assert job.status == "sent" and job.sent_count == 3
    rows = Notification.objects.filter(source=job.source)
    assert {r.channel for r in rows} == {"push_notification"}
    assert {r.image_url for r in rows} == {job.image_url} and job.image_url.endswith(".png")


def test_push_rejects_non_images_and_bad_user_ids(client, students):
    r = client.post(
        f"{V1}/bulk-push",
        {"title": "T", "message": "M", "role": "STUDENT", "file": SimpleUploadedFile("x.png", b"not an image")},
        format="multipart",
    )
    error(r, 400, "Invalid image")
    r = client.post(f"{V1}/bulk-push", {"title": "T", "message": "M", "user_ids": "1,2,3"}, format="multipart")
    error(r, 400, "Invalid user_ids format")
    r = client.post(f"{V1}/bulk-push", {"title": "T", "message": "M", "user_ids": '["a"]'}, format="multipart")
    error(r, 400, "Invalid user_ids format")


def test_push_disabled_platform(client, students, platform):
    platform.push_enabled = False
    platform.save()
    r = client.post(f"{V1}/bulk-push", {"title": "T", "message": "M", "role": "STUDENT"}, format="multipart")
    error(r, 400, "Push notifications are disabled")


# --- Bulk in-app (§9) ----------------------------------------------------------


MAINTENANCE = "The app will be unavailable 11 PM\u20131 AM UTC."  # the document's text, en dash and all


def test_in_app_immediate_writes_inbox_rows_and_broadcasts(client, students, api, django_capture_on_commit_callbacks):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(students[0].pk), channel)
    # Sockets hear of rows only once they are committed.
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(
            f"{V1}/bulk-in-app",
            {"title": "Maintenance tonight", "message": MAINTENANCE, "role": "STUDENT"},
            format="json",
        )
    counts = {"total_recipients": 3, "sent": 3, "failed": 0, "pending": 0, "suppressed": 0}
    assert envelope(r, 200, "Bulk in-app notification sent") == counts
    event = async_to_sync(layer.receive)(channel)
    assert event["type"] == "notification.created" and event["recipient_id"] == students[0].pk
    assert event["payload"]["payload"] == {
        "headline": "Maintenance tonight",
        "message": MAINTENANCE,
    }
    assert event["payload"]["type"] == "system_alert" and event["payload"]["level"] == "info"
    # Users without a socket see it on their next poll.
    inbox = api(students[1]).get(V1).json()["data"]["notifications"]
    assert [n["payload"]["headline"] for n in inbox] == ["Maintenance tonight"]


def test_in_app_scheduled_with_type_and_level(client, students):
    ids = [s.pk for s in students]
    r = client.post(
        f"{V1}/bulk-in-app",
        {
            "title": "New practice unlocked",
            "message": "Unit 4 practice is now available.",
            "user_ids": ids,
            "type": "system_alert",
            "level": "info",
            "scheduled_at": "2030-06-16T07:00:00Z",
        },
        format="json",
    )
    data = envelope(r, 201, "In-app notification scheduled")
    assert {
        k: data[k] for k in ("channel", "title", "message", "scheduled_at", "status", "target_user_ids", "target_raw")
    } == {
        "channel": "in_app",
        "title": "New practice unlocked",
        "message": "Unit 4 practice is now available.",
        "scheduled_at": "2030-06-16T07:00:00.000Z",
        "status": "pending",
        "target_user_ids": ids,
        "target_raw": {"type": "system_alert", "level": "info"},
    }
    job = run_due(data["id"])
    assert job.status == "sent"
    rows = Notification.objects.filter(source=job.source)
    assert rows.count() == 3 and {(r.notification_type, r.level, r.status) for r in rows} == {
        ("system_alert", "info", "UNREAD")
    }


def test_in_app_type_level_defaults_and_checks(client, students):
    r = client.post(
        f"{V1}/bulk-in-app",
        {"title": "Paid", "message": "Thanks", "role": "STUDENT", "type": "payment_verified", "level": "success"},
        format="json",
    )
    envelope(r, 200, "Bulk in-app notification sent")
    assert set(Notification.objects.values_list("notification_type", "level")) == {("payment_verified", "success")}
    r = client.post(
        f"{V1}/bulk-in-app", {"title": "T", "message": "M", "role": "STUDENT", "level": "loud"}, format="json"
    )
    error(r, 400, "Invalid level")


# --- Errors (§13): every 400 of the table, word for word -----------------------


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("bulk-sms", {"role": "STUDENT"}, "Message is required"),
        ("bulk-sms", {"message": "   ", "role": "STUDENT"}, "Message is required"),
        ("bulk-in-app", {"title": "T", "role": "STUDENT"}, "Message is required"),
        ("bulk-push", {"message": "M", "role": "STUDENT"}, "Title is required"),
        ("bulk-in-app", {"message": "M", "role": "STUDENT"}, "Title is required"),
        ("bulk-sms", {"message": "M"}, "No recipients specified"),
        ("bulk-email", {"subject": "S", "message": "M"}, "No recipients specified"),
        ("bulk-push", {"title": "T", "message": "M"}, "No recipients specified"),
        ("bulk-in-app", {"title": "T", "message": "M", "user_ids": []}, "No recipients specified"),
        ("bulk-sms", {"message": "M", "role": "INSTRUCTOR"}, "No target users found"),
        ("bulk-in-app", {"title": "T", "message": "M", "user_ids": [999999]}, "No target users found"),
        ("bulk-sms", {"message": "M", "role": "STUDENT", "scheduled_at": "tomorrow"}, "Invalid scheduled_at format"),
        ("bulk-sms", {"message": "M", "role": "STUDENT", "scheduled_at": "2030-06-15"}, "Invalid scheduled_at format"),
        (
            "bulk-sms",
            {"message": "M", "role": "STUDENT", "scheduled_at": "2030-06-15T08:00:00"},
            "Invalid scheduled_at format",
        ),
        # The document's own example time has passed by now.
        (
            "bulk-sms",
            {"message": "M", "role": "STUDENT", "scheduled_at": "2026-06-15T08:00:00Z"},
            "scheduled_at must be in the future",
        ),
        ("bulk-push", {"title": "T", "message": "M", "user_ids": "[1,"}, "Invalid user_ids format"),
        ("bulk-email", {"subject": "S", "message": "M", "user_ids": "nope"}, "Invalid user_ids format"),
        ("bulk-sms", {"message": "M", "user_ids": "1"}, "Invalid user_ids format"),
        ("bulk-sms", {"message": "M", "role": "TEACHER"}, "Invalid role"),
        ("bulk-sms", {"message": "M", "phone_numbers": ["12"]}, "Invalid phone number"),
    ],
)
def test_400_messages(client, students, path, body, message):
    fmt = "multipart" if path in ("bulk-email", "bulk-push") else "json"
    r = client.post(f"{V1}/{path}", body, format=fmt)
    error(r, 400, message)
    assert not Notification.objects.exists() and not ScheduledNotification.objects.exists()


def test_other_platforms_users_are_not_found(client, outsider):
    r = client.post(f"{V1}/bulk-sms", {"message": "M", "user_ids": [outsider.pk]}, format="json")
    error(r, 400, "No target users found")
    r = client.post(
        f"{V1}/bulk-sms", {"message": "M", "user_ids": [outsider.pk], "scheduled_at": future()}, format="json"
    )
    error(r, 400, "No target users found")


def test_malformed_json_is_a_400_not_a_500(client):
    r = client.generic("POST", f"{V1}/bulk-sms", "{nope", content_type="application/json")
    assert r.status_code == 400 and set(r.json()) == {"message", "error"}


# --- 401 / 403 -----------------------------------------------------------------

ENDPOINTS = [
    ("post", "bulk-sms", "notifications.bulk_sms"),
    ("post", "bulk-email", "notifications.bulk_email"),
    ("post", "bulk-push", "notifications.bulk_push"),
    ("post", "bulk-in-app", "notifications.bulk_in_app"),
    ("get", "scheduled", "notifications_scheduled.list"),
    ("get", "scheduled/{id}", "notifications_scheduled.get"),
    ("patch", "scheduled/{id}", "notifications_scheduled.update"),
    ("post", "scheduled/{id}/cancel", "notifications_scheduled.cancel"),
    ("get", "scheduled/{id}/deliveries", "notifications_scheduled.get"),
]
ALL_KEYS = sorted({key for _, _, key in ENDPOINTS})


@pytest.fixture
def job(client, students):
    r = client.post(f"{V1}/bulk-sms", {"message": "M", "role": "STUDENT", "scheduled_at": future()}, format="json")
    return ScheduledNotification.objects.get(pk=r.json()["data"]["id"])


@pytest.mark.parametrize(("method", "path", "key"), ENDPOINTS)
def test_401_without_token(api, job, method, path, key):
    r = getattr(api(), method)(f"{V1}/{path.format(id=job.pk)}", {}, format="json")
    assert r.status_code == 401 and set(r.json()) == {"message", "error"}


@pytest.mark.parametrize(("method", "path", "key"), ENDPOINTS)
def test_403_without_the_permission_key(api, make_user, job, method, path, key):
    """A student holding every other key of the document is still refused this one."""
    user = make_user("almost", role="STUDENT")
    grant(user, *(k for k in ALL_KEYS if k != key))
    r = getattr(api(user), method)(f"{V1}/{path.format(id=job.pk)}", {}, format="json")
    assert (r.status_code, r.json()) == (403, {"message": "Forbidden", "error": f"Missing permission: {key}"})


def test_a_granted_key_is_enough(api, make_user, students):
    user = make_user("texter", role="STUDENT")
    grant(user, "notifications.bulk_sms")
    r = api(user).post(f"{V1}/bulk-sms", {"message": "M", "role": "STUDENT"}, format="json")
    assert envelope(r, 200, "Bulk SMS sent")["sent"] == 4


# --- Scheduled job management (§10) --------------------------------------------


def _schedule(client, channel="sms", when=None, **extra):
    bodies = {
        "sms": ("bulk-sms", {"message": "M", "role": "STUDENT"}, "json"),
        "in_app": ("bulk-in-app", {"title": "T", "message": "M", "role": "STUDENT"}, "json"),
        "email": ("bulk-email", {"subject": "S", "message": "M", "role": "STUDENT"}, "multipart"),
        "push": ("bulk-push", {"title": "T", "message": "M", "role": "STUDENT"}, "multipart"),
    }
    path, body, fmt = bodies[channel]
    r = client.post(f"{V1}/{path}", {**body, "scheduled_at": when or future(), **extra}, format=fmt)
    assert r.status_code == 201, r.json()
    return r.json()["data"]


def test_list_with_filters_and_pages(client, students, make_user, api):
    a = _schedule(client, "sms", "2030-01-01T00:00:00Z")
    b = _schedule(client, "in_app", "2030-02-01T00:00:00Z")
    c = _schedule(client, "in_app", "2030-03-01T00:00:00Z")
    d = _schedule(client, "push", "2030-04-01T00:00:00Z")
    client.post(f"{V1}/scheduled/{d['id']}/cancel")
    # Another platform's job never shows.
    foreign_admin = make_member(platform=PlatformFactory(key="other-school"), username="boss", role="ADMIN", admin=True)
    make_member(platform=PlatformFactory(key="other-school"), username="kid", role="STUDENT")
    _schedule(api(foreign_admin), "sms")

    r = client.get(f"{V1}/scheduled", {"channel": "in_app", "status": "pending", "page": 1, "limit": 20})
    body = r.json()
    assert r.status_code == 200 and set(body) == {"scheduled_notifications", "total_count", "limit", "page"}
    assert [j["id"] for j in body["scheduled_notifications"]] == [c["id"], b["id"]]
    assert (body["total_count"], body["limit"], body["page"]) == (2, 20, 1)
    assert all(set(j) == JOB_KEYS for j in body["scheduled_notifications"])

    body = client.get(f"{V1}/scheduled").json()
    assert (body["total_count"], body["limit"], body["page"]) == (4, 20, 1)
    body = client.get(f"{V1}/scheduled", {"limit": 3, "page": 2}).json()
    assert [j["id"] for j in body["scheduled_notifications"]] == [a["id"]] and body["total_count"] == 4
    body = client.get(f"{V1}/scheduled", {"status": "cancelled"}).json()
    assert [j["id"] for j in body["scheduled_notifications"]] == [d["id"]]
    body = client.get(f"{V1}/scheduled", {"after": "2030-01-15T00:00:00Z", "before": "2030-03-01T00:00:00Z"}).json()
    assert [j["id"] for j in body["scheduled_notifications"]] == [c["id"], b["id"]]
    body = client.get(f"{V1}/scheduled", {"channel": "push"}).json()
    assert [j["channel"] for j in body["scheduled_notifications"]] == ["push"]

    error(client.get(f"{V1}/scheduled", {"status": "done"}), 400, "Invalid status")
    error(client.get(f"{V1}/scheduled", {"channel": "fax"}), 400, "Invalid channel")
    error(client.get(f"{V1}/scheduled", {"after": "yesterday"}), 400, "Invalid after format")
    error(client.get(f"{V1}/scheduled", {"limit": 0}), 400, "Invalid limit")
    error(client.get(f"{V1}/scheduled", {"page": "x"}), 400, "Invalid page")


def test_get_one(client, students):
    job = _schedule(client, "sms")
    data = envelope(client.get(f"{V1}/scheduled/{job['id']}"), 200, "Scheduled notification retrieved")
    assert data == job


def test_cancel(client, students):
    job = _schedule(client, "sms")
    data = envelope(client.post(f"{V1}/scheduled/{job['id']}/cancel"), 200, "Scheduled notification cancelled")
    assert set(data) == {"id", "status", "cancelled_at"}
    assert data["id"] == job["id"] and data["status"] == "cancelled" and data["cancelled_at"].endswith("Z")
    # A cancelled job never runs.
    assert scheduler.sweep(now=timezone.now() + timedelta(days=400))["scheduled_notifications"] == 0
    assert locmem.outbox["sms"] == []
    r = client.post(f"{V1}/scheduled/{job['id']}/cancel")
    body = error(r, 400, "Scheduled notification cannot be cancelled")
    assert "this one is cancelled" in body["error"]


def test_cancel_of_a_sent_job_is_refused(client, students):
    job = run_due(_schedule(client, "sms")["id"])
    assert job.status == "sent"
    error(client.post(f"{V1}/scheduled/{job.pk}/cancel"), 400, "Scheduled notification cannot be cancelled")


def test_foreign_and_unknown_ids_are_404(client, students, api):
    other = PlatformFactory(key="other-school")
    boss = make_member(platform=other, username="boss", role="ADMIN", admin=True)
    make_member(platform=other, username="kid", role="STUDENT")
    theirs = _schedule(api(boss), "sms")
    for pk in (theirs["id"], 987654):
        error(client.get(f"{V1}/scheduled/{pk}"), 404, "Scheduled notification not found")
        error(client.post(f"{V1}/scheduled/{pk}/cancel"), 404, "Scheduled notification not found")
        error(
            client.patch(f"{V1}/scheduled/{pk}", {"message": "x"}, format="json"),
            404,
            "Scheduled notification not found",
        )
        error(client.get(f"{V1}/scheduled/{pk}/deliveries"), 404, "Scheduled notification not found")
    assert ScheduledNotification.objects.get(pk=theirs["id"]).status == "pending"


# --- Past the document: edit, deliveries ---------------------------------------


def test_patch_edits_and_reschedules_a_pending_job(client, students):
    job = _schedule(client, "in_app", "2030-01-01T00:00:00Z")
    r = client.patch(
        f"{V1}/scheduled/{job['id']}",
        {"message": "Moved", "scheduled_at": "2030-02-01T10:00:00+03:00", "level": "warning"},
        format="json",
    )
    data = envelope(r, 200, "Scheduled notification updated")
    assert data["message"] == "Moved" and data["title"] == "T"
    assert data["scheduled_at"] == "2030-02-01T07:00:00.000Z"
    assert data["target_raw"] == {"type": "system_alert", "level": "warning"} and data["target_role"] == "STUDENT"
    assert ScheduledNotification.objects.get(pk=job["id"]).due_at.isoformat() == "2030-02-01T07:00:00+00:00"


def test_patch_validates_like_create(client, students):
    job = _schedule(client, "sms")
    url = f"{V1}/scheduled/{job['id']}"
    error(client.patch(url, {"message": ""}, format="json"), 400, "Message is required")
    error(
        client.patch(url, {"scheduled_at": "2020-01-01T00:00:00Z"}, format="json"),
        400,
        "scheduled_at must be in the future",
    )
    error(client.patch(url, {"scheduled_at": "soon"}, format="json"), 400, "Invalid scheduled_at format")
    error(client.patch(url, {"role": ""}, format="json"), 400, "No recipients specified")
    error(client.patch(url, {"role": "", "user_ids": [999999]}, format="json"), 400, "No target users found")
    assert client.get(url).json()["data"] == job


def test_patch_email_replaces_attachments_and_push_image(client, students):
    job = _schedule(client, "email", file=SimpleUploadedFile("old.txt", b"old"))
    r = client.patch(
        f"{V1}/scheduled/{job['id']}",
        {"subject": "New subject", "file": SimpleUploadedFile("new.txt", b"new")},
        format="multipart",
    )
    assert envelope(r, 200, "Scheduled notification updated")["title"] == "New subject"
    assert [a.filename for a in Attachment.objects.filter(source=f"scheduled:{job['id']}")] == ["new.txt"]

    push = _schedule(client, "push")
    r = client.patch(f"{V1}/scheduled/{push['id']}", {"file": SimpleUploadedFile("p.png", PNG)}, format="multipart")
    assert r.status_code == 200
    assert ScheduledNotification.objects.get(pk=push["id"]).image_url.endswith(".png")


def test_patch_only_pending(client, students):
    job = run_due(_schedule(client, "sms")["id"])
    r = client.patch(f"{V1}/scheduled/{job.pk}", {"message": "x"}, format="json")
    error(r, 400, "Scheduled notification cannot be edited")


def test_deliveries_of_a_job(client, students, make_user):
    make_user("nophone", role="STUDENT", phone_number="")
    job = run_due(_schedule(client, "sms")["id"])
    assert job.status == "sent" and (job.total_recipients, job.sent_count, job.failed_count) == (4, 3, 1)
    r = client.get(f"{V1}/scheduled/{job.pk}/deliveries", {"limit": 3})
    body = r.json()
    assert r.status_code == 200 and set(body) == {"deliveries", "total_count", "limit", "page", "summary"}
    assert (body["total_count"], body["limit"], body["page"], len(body["deliveries"])) == (4, 3, 1, 3)
    assert body["summary"] == {
        "total_recipients": 4,
        "sent": 3,
        "failed": 1,
        "pending": 0,
        "suppressed": 0,
        "units_sent": 3,
        "units_failed": 1,  # the recipient without a phone number
    }
    failed = client.get(f"{V1}/scheduled/{job.pk}/deliveries", {"status": "failed"}).json()["deliveries"]
    assert len(failed) == 1 and failed[0]["error"] == "User has no phone number" and failed[0]["status"] == "failed"
    page2 = client.get(f"{V1}/scheduled/{job.pk}/deliveries", {"limit": 3, "page": 2}).json()["deliveries"]
    assert len(page2) == 1
    first = body["deliveries"][0]
    assert set(first) == {
        "id",
        "recipient_id",
        "recipient",
        "address",
        "status",
        "rule",
        "next_attempt_at",
        "error",
        "attempts",
        "units_sent",
        "units_failed",
        "provider_message_id",
        "sent_at",
        "created_at",
        "updated_at",
    }

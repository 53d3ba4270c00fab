"""The admin's compose screen, job list, job page and cancel, for a platform admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from notifications import scheduler
from notifications.backends import locmem
from notifications.models import ScheduledNotification
from notifications.tests.bulk_helpers import PNG
from notifications.tests.factories import PlatformFactory, make_member

pytestmark = pytest.mark.django_db

COMPOSE = "/admin/notifications/schedulednotification/compose/"
LIST = "/admin/notifications/schedulednotification/"


@pytest.fixture
def students(make_user):
    return [make_user(f"student{i}", role="STUDENT") for i in range(3)]


@pytest.fixture
def staff(client, make_user):
    """A platform admin with the ADMIN role (bulk keys) and the admin's view permission."""
    user = make_user("ops", role="ADMIN", admin=True, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_schedulednotification", "view_notification"])
    )
    client.force_login(user)
    return user


def compose(client, platform, **fields):
    data = {"platform": platform.pk, "when": "now", "level": "info", "type": "system_alert", **fields}
    return client.post(COMPOSE, data)


def test_compose_sms_now_shows_counts(client, staff, platform, students):
    r = compose(client, platform, channel="sms", message="Hi", role="STUDENT", phone_numbers="+251911223344")
    assert r.status_code == 200
    html = r.content.decode()
    assert "Bulk SMS sent" in html and "<th>Recipients</th><td>4</td>" in html and "<th>Sent</th><td>4</td>" in html
    assert len(locmem.outbox["sms"]) == 4


def test_compose_in_app_scheduled_redirects_to_the_job(client, staff, platform, students):
    when = timezone.now() + timedelta(days=2)
    r = compose(
        client,
        platform,
        channel="in_app",
        title="Heads up",
        message="Exam soon",
        users=[students[0].pk, students[1].pk],
        when="schedule",
        scheduled_at_0=when.strftime("%Y-%m-%d"),
        scheduled_at_1=when.strftime("%H:%M:%S"),
        type="exam_reminder",
        level="warning",
    )
    job = ScheduledNotification.objects.get()
    assert r.status_code == 302 and r["Location"] == f"{LIST}{job.pk}/change/"
    assert job.target_user_ids == [students[0].pk, students[1].pk]
    assert job.target_raw == {"type": "exam_reminder", "level": "warning"} and job.created_by == staff
    assert abs(job.scheduled_at - when) < timedelta(seconds=1)


def test_compose_push_with_image_and_email_with_attachment(client, staff, platform, students):
    r = client.post(
        COMPOSE,
        {
            "platform": platform.pk,
            "channel": "push",
            "title": "T",
            "message": "M",
            "role": "STUDENT",
            "when": "now",
            "level": "info",
            "file": SimpleUploadedFile("p.png", PNG),
        },
    )
    assert r.status_code == 200 and "Bulk push notification sent" in r.content.decode()
    assert "/media/notification_images/" in r.content.decode()
    r = client.post(
        COMPOSE,
        {
            "platform": platform.pk,
            "channel": "email",
            "title": "Subject",
            "html": "<p>Hi</p>",
            "emails": "a@example.com\nb@example.com",
            "when": "now",
            "level": "info",
            "file": SimpleUploadedFile("notes.txt", b"x"),
        },
    )
    assert "Bulk email sent" in r.content.decode() and len(locmem.outbox["email"]) == 2


def test_compose_shows_the_documented_errors(client, staff, platform, students):
    r = compose(client, platform, channel="sms", message="", role="STUDENT")
    assert "Message is required" in r.content.decode()
    r = compose(client, platform, channel="in_app", title="T", message="M")
    assert "No recipients specified" in r.content.decode()
    r = compose(client, platform, channel="sms", message="M", role="STUDENT", when="schedule")
    assert "Invalid scheduled_at format" in r.content.decode()
    assert not ScheduledNotification.objects.exists() and not locmem.outbox["sms"]


def test_compose_needs_a_bulk_key(client, make_user, platform):
    user = make_user("viewer", role="STUDENT", is_staff=True)
    client.force_login(user)
    assert client.get(COMPOSE).status_code == 403


def _job(platform, status="pending", **fields):
    now = timezone.now()
    return ScheduledNotification.objects.create(
        platform=platform,
        channel=fields.pop("channel", "sms"),
        message="Hello",
        target_role="STUDENT",
        scheduled_at=fields.pop("scheduled_at", now + timedelta(hours=1)),
        due_at=now + timedelta(hours=1),
        status=status,
        **fields,
    )


def test_job_list_badges_filters_and_tenancy(client, staff, platform):
    _job(platform, "pending")
    _job(platform, "failed", channel="email")
    _job(PlatformFactory(key="other-school"), "sent")
    r = client.get(LIST)
    html = r.content.decode()
    assert r.status_code == 200 and "Compose a bulk send" in html
    assert html.count("text-transform:uppercase") == 2  # two badges: the other platform's job is not listed
    assert ">pending</span>" in html and ">failed</span>" in html and ">sent</span>" not in html
    assert client.get(LIST, {"status": "failed"}).context["cl"].result_count == 1
    assert client.get(LIST, {"channel": "email"}).context["cl"].result_count == 1
    assert client.get(LIST, {"when": "next7"}).context["cl"].result_count == 2
    assert client.get(LIST, {"when": "past"}).context["cl"].result_count == 0


def test_job_page_shows_progress_and_deliveries(client, staff, platform, students, make_user):
    make_user("nophone", role="STUDENT", phone_number="")
    job = _job(platform)
    scheduler.sweep(now=job.due_at + timedelta(seconds=1))
    r = client.get(f"{LIST}{job.pk}/change/")
    html = r.content.decode()
    assert r.status_code == 200
    assert "3 sent · 1 failed · 0 pending of 4" in html
    assert "User has no phone number" in html and students[0].phone_number in html
    assert f"?source=scheduled:{job.pk}" in html
    assert "Cancel job" not in html  # finished jobs cannot be cancelled


def test_cancel_from_the_job_page_and_the_action(client, staff, platform):
    staff.memberships.get().permissions.add(Permission.objects.get(codename="scheduled_cancel"))
    one, two, done = _job(platform), _job(platform), _job(platform, "sent")
    assert "Cancel job" in client.get(f"{LIST}{one.pk}/change/").content.decode()
    r = client.post(f"{LIST}{one.pk}/cancel/")
    assert r.status_code == 302
    one.refresh_from_db()
    assert one.status == "cancelled"
    r = client.post(LIST, {"action": "cancel_jobs", "_selected_action": [two.pk, done.pk]})
    assert r.status_code == 302
    two.refresh_from_db()
    done.refresh_from_db()
    assert (two.status, done.status) == ("cancelled", "sent")


def test_other_platform_admin_cannot_open_our_job(client, platform):
    other = PlatformFactory(key="other-school")
    boss = make_member(platform=other, username="boss", role="ADMIN", admin=True, is_staff=True)
    boss.user_permissions.add(Permission.objects.get(codename="view_schedulednotification"))
    client.force_login(boss)
    job = _job(platform)
    assert client.get(f"{LIST}{job.pk}/change/").status_code == 404
    assert client.get(LIST).context["cl"].result_count == 0

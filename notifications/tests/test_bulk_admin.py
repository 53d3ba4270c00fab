"""The admin's compose screen, job list, job page and cancel, for a platform admin."""

from __future__ import annotations

import uuid
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Permission
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from notifications import scheduler
from notifications.backends import locmem
from notifications.models import Attachment, ImmediateSend, ScheduledNotification
from notifications.tests.bulk_helpers import PNG
from notifications.tests.factories import PlatformFactory, make_member

pytestmark = pytest.mark.django_db

COMPOSE = "/admin/notifications/schedulednotification/compose/"
LIST = "/admin/notifications/schedulednotification/"
HISTORY = "/admin/notifications/immediatesend/"


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


class _HiddenInputs(HTMLParser):
    """The hidden inputs of the confirmation page's form, as POST data."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.data.setdefault(a["name"], []).append(a.get("value") or "")


def hidden_inputs(response) -> dict:
    parser = _HiddenInputs()
    parser.feed(response.content.decode())
    return parser.data


def review(client, platform, files=None, **fields):
    """Step one: the compose form, answered with the confirmation page (or the form with errors)."""
    data = {
        "form_key": uuid.uuid4().hex,
        "platform": platform.pk,
        "when": "now",
        "level": "info",
        "type": "system_alert",
        **fields,
        **(files or {}),
    }
    return client.post(COMPOSE, data)


def confirm(client, page):
    """Step two: post the confirmation page's form as the browser would."""
    assert 'id="confirm-form"' in page.content.decode(), page.content.decode()[:2000]
    return client.post(COMPOSE, hidden_inputs(page))


def compose(client, platform, **fields):
    return confirm(client, review(client, platform, **fields))


def test_compose_sms_asks_for_confirmation_with_the_recipient_count(client, staff, platform, students):
    page = review(client, platform, channel="sms", message="Hi", role="STUDENT", phone_numbers="+251911223344")
    html = page.content.decode()
    assert page.status_code == 200 and "This will reach <strong>4</strong> recipients" in html
    assert "3 members of the platform and 1 direct address" in html and "Confirm and send to 4" in html
    assert not locmem.outbox["sms"] and not ImmediateSend.objects.exists()  # nothing sent before the confirmation

    r = confirm(client, page)
    record = ImmediateSend.objects.get()
    assert r.status_code == 302 and r["Location"] == f"{HISTORY}{record.pk}/change/"
    assert len(locmem.outbox["sms"]) == 4
    assert (record.total_recipients, record.sent_count, record.failed_count) == (4, 4, 0)
    assert record.created_by == staff and record.target_role == "STUDENT"

    shown = client.get(r["Location"])
    html = shown.content.decode()
    assert shown.status_code == 200 and "Bulk SMS sent: 4 sent, 0 failed." in html
    assert "4 sent · 0 failed · 0 pending of 4" in html
    # Recipients read as people, not as `user:<id>`.
    assert "student0" in html and students[0].email in html and "user:" not in html
    assert 'name="_save"' not in html  # a record, not a form


def test_a_second_submission_of_the_same_form_sends_nothing(client, staff, platform, students):
    page = review(client, platform, channel="sms", message="Once", role="STUDENT")
    first = confirm(client, page)
    again = confirm(client, page)  # a double click, the back button, a re-POST
    assert len(locmem.outbox["sms"]) == 3 and ImmediateSend.objects.count() == 1
    assert again.status_code == 302 and again["Location"] == first["Location"]
    followed = client.get(again["Location"])
    assert "already submitted; nothing was sent again" in followed.content.decode()
    # The compose step of the same form (the back button twice) leads to the result too.
    back = client.post(COMPOSE, {**hidden_inputs(page), "confirm": []})
    assert back.status_code == 302 and back["Location"] == first["Location"]
    assert len(locmem.outbox["sms"]) == 3


def test_a_form_rejected_on_confirmation_can_be_corrected_and_sent(client, staff, platform, students):
    page = review(client, platform, channel="push", title="T", message="Hi", role="STUDENT")
    platform.push_enabled = False  # switched off between the two steps
    platform.save()
    r = confirm(client, page)
    assert r.status_code == 200 and "Push notifications are disabled" in r.content.decode()
    platform.push_enabled = True
    platform.save()
    assert confirm(client, page).status_code == 302 and len(locmem.outbox["push"]) == 3


def test_compose_in_app_scheduled_redirects_to_the_job(client, staff, platform, students):
    when = timezone.now() + timedelta(days=2)
    page = review(
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
    assert "It would reach <strong>2</strong> recipients" in page.content.decode()
    assert not ScheduledNotification.objects.exists()
    r = confirm(client, page)
    job = ScheduledNotification.objects.get()
    assert r.status_code == 302 and r["Location"] == f"{LIST}{job.pk}/change/"
    assert job.target_user_ids == [students[0].pk, students[1].pk]
    assert job.target_raw == {"type": "exam_reminder", "level": "warning"} and job.created_by == staff
    assert abs(job.scheduled_at - when) < timedelta(seconds=1)
    assert confirm(client, page)["Location"] == r["Location"] and ScheduledNotification.objects.count() == 1


def test_compose_push_with_image_and_email_with_attachment(client, staff, platform, students):
    page = review(
        client,
        platform,
        channel="push",
        title="T",
        message="M",
        role="STUDENT",
        files={"file": SimpleUploadedFile("p.png", PNG)},
    )
    staged = hidden_inputs(page)["staged_file"][0]
    assert staged.startswith(f"compose-uploads/{staff.pk}/") and default_storage.exists(staged)
    r = confirm(client, page)
    record = ImmediateSend.objects.get()
    assert r.status_code == 302 and "/media/notification_images/" in record.image_url
    assert not default_storage.exists(staged)  # the staged copy goes once it is sent
    html = client.get(r["Location"]).content.decode()
    assert "Bulk push notification sent" in html and record.image_url in html

    page = review(
        client,
        platform,
        channel="email",
        title="Subject",
        html="<p>Hi</p>",
        emails="a@example.com\nb@example.com",
        files={"file": SimpleUploadedFile("notes.txt", b"x")},
    )
    confirm(client, page)
    assert len(locmem.outbox["email"]) == 2
    sent = ImmediateSend.objects.get(channel="email")
    assert Attachment.objects.get(source=sent.source).filename == "notes.txt"


def test_a_staged_file_of_another_form_is_refused(client, staff, platform, students):
    page = review(client, platform, channel="sms", message="Hi", role="STUDENT")
    data = hidden_inputs(page)
    data["staged_file"] = ["compose-uploads/1/" + "0" * 32 + "/../../.secret_key"]
    r = client.post(COMPOSE, data)
    assert r.status_code == 200 and "no longer available" in r.content.decode() and not locmem.outbox["sms"]


def test_compose_shows_the_documented_errors(client, staff, platform, students):
    r = review(client, platform, channel="sms", message="", role="STUDENT")
    assert "Message is required" in r.content.decode()
    r = review(client, platform, channel="in_app", title="T", message="M")
    assert "No recipients specified" in r.content.decode()
    r = review(client, platform, channel="sms", message="M", role="STUDENT", when="schedule")
    assert "Invalid scheduled_at format" in r.content.decode()
    assert not ScheduledNotification.objects.exists() and not locmem.outbox["sms"]


def test_send_history_lists_immediate_sends_of_our_platforms_only(client, staff, platform, students):
    compose(client, platform, channel="sms", message="Ours", role="STUDENT")
    other = PlatformFactory(key="other-school")
    ImmediateSend.objects.create(platform=other, channel="sms", message="Theirs")
    r = client.get(HISTORY)
    html = r.content.decode()
    assert r.status_code == 200 and r.context["cl"].result_count == 1
    assert "Ours" in html and "Theirs" not in html and "3 / 0 / 3" in html
    assert "everyone with role STUDENT" in html and "Compose a bulk send" in html


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
    assert 'name="_save"' not in html  # nor saved: a finished job is a record


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


def test_uploads_of_forms_never_confirmed_are_purged_after_a_day(client, staff, platform, students):
    import os

    from notifications.bulk_scheduled.compose import compose_uploads_purge
    from notifications.tasks import purge_idempotency_keys

    kwargs = {"channel": "push", "title": "T", "message": "M", "role": "STUDENT"}
    old = hidden_inputs(review(client, platform, files={"file": SimpleUploadedFile("old.png", PNG)}, **kwargs))
    fresh = hidden_inputs(review(client, platform, files={"file": SimpleUploadedFile("new.png", PNG)}, **kwargs))
    old_name, fresh_name = old["staged_file"][0], fresh["staged_file"][0]
    day_ago = (timezone.now() - timedelta(hours=25)).timestamp()
    os.utime(default_storage.path(old_name), (day_ago, day_ago))
    assert purge_idempotency_keys() >= 1
    assert not default_storage.exists(old_name) and default_storage.exists(fresh_name)
    default_storage.delete(fresh_name)
    assert compose_uploads_purge() == 0


def test_a_rejected_form_keeps_its_upload(client, staff, platform, students):
    page = review(
        client,
        platform,
        channel="push",
        title="T",
        message="",
        role="STUDENT",
        files={"file": SimpleUploadedFile("keep.png", PNG)},
    )
    html = page.content.decode()
    assert "Message is required" in html and "Attached: keep.png" in html
    data = hidden_inputs(page)
    staged = data["staged_file"][0]
    assert default_storage.exists(staged)
    fixed = {k: v for k, v in data.items()}
    fixed.update(
        platform=[platform.pk],
        channel=["push"],
        title=["T"],
        message=["M"],
        role=["STUDENT"],
        when=["now"],
        level=["info"],
    )
    r = confirm(client, client.post(COMPOSE, fixed))
    assert r.status_code == 302 and ImmediateSend.objects.get().image_url


def test_compose_push_with_an_sms_fallback(client, staff, platform, students):
    # Nobody has a device: each student gets the SMS instead, once.
    r = compose(
        client, platform, channel="push", title="Exam", message="Exam at 9:00.", role="STUDENT", fallback_channel="sms"
    )
    assert r.status_code == 302
    assert sorted(m["address"] for m in locmem.outbox["sms"]) == sorted(s.phone_number for s in students)
    page = review(client, platform, channel="in_app", title="T", message="M", role="STUDENT", fallback_channel="sms")
    assert "Invalid fallback_channel" in page.content.decode()

"""Builds that use a platform template (templates_app), and opt-outs."""

from __future__ import annotations

import pytest

from builder.models import Build, BuildRecipient, BuildStatus
from builder.tests.conftest import BASE
from notifications.backends import locmem
from notifications.models import Notification
from templates_app.models import NotificationTemplate, UserNotificationPreference
from templates_app.services.templates import template_customize, template_toggle

pytestmark = pytest.mark.django_db

ENROLLMENT = "USER_NOTIF_COURSE_ENROLLMENT"


def default_id(notification_type: str) -> str:
    return str(NotificationTemplate.objects.get(platform__isnull=True, type=notification_type).pk)


@pytest.fixture
def send(client, django_capture_on_commit_callbacks):
    def _send(build_id, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(BASE + "send/", {"build_id": build_id, **extra}, format="json")

    return _send


def by_template(template_id, channels=(1, 3), sources=None, context=None):
    return {
        "template_id": template_id,
        "channels": list(channels),
        "sources": sources or [{"type": "username", "data": "jane,john"}],
        "context": context if context is not None else {"course_name": "Python 101"},
    }


def test_context_lists_the_enabled_templates(client, platform):
    template_toggle(platform=platform, notification_type="APP_REGISTRATION", enabled=False)
    templates = client.get(BASE + "context/").json()["data"]["templates"]
    types = [t["type"] for t in templates]
    assert ENROLLMENT in types and "APP_REGISTRATION" not in types
    enrollment = next(t for t in templates if t["type"] == ENROLLMENT)
    assert enrollment == {"id": default_id(ENROLLMENT), "name": "Course Enrollment", "type": ENROLLMENT}


def test_context_shows_the_platforms_own_copy(client, platform):
    effective, _ = template_customize(platform=platform, notification_type=ENROLLMENT, changes={"name": "Enrolled!"})
    enrollment = next(t for t in client.get(BASE + "context/").json()["data"]["templates"] if t["type"] == ENROLLMENT)
    assert enrollment == {"id": str(effective.template.pk), "name": "Enrolled!", "type": ENROLLMENT}


def test_send_with_a_template(client, send, people):
    r = client.post(BASE + "preview/", by_template(default_id(ENROLLMENT)), format="json")
    assert r.status_code == 200, r.json()
    build_id = r.json()["build_id"]
    assert send(build_id).json()["message"] == "Notifications sent"
    mail = sorted(locmem.outbox["email"], key=lambda m: m["address"])
    assert [m["address"] for m in mail] == ["jane@example.com", "john@example.com"]
    assert mail[0]["title"] == "Welcome to Python 101"
    assert mail[0]["body"] == "Hi jane,\nYou have been enrolled in Python 101."
    assert "<strong>Python 101</strong>" in mail[0]["html"]
    in_app = Notification.objects.get(source=f"build:{build_id}", channel="in_app", user=people["john"])
    assert (in_app.title, in_app.notification_type) == ("You have been enrolled in Python 101", ENROLLMENT)
    detail = client.get(BASE + f"{build_id}/").json()
    assert (detail["template_type"], detail["template_name"], detail["status"]) == (
        ENROLLMENT,
        "Course Enrollment",
        "completed",
    )


def test_the_send_uses_the_template_as_it_is_at_send_time(client, send, platform, people):
    build_id = client.post(BASE + "preview/", by_template(default_id(ENROLLMENT), channels=[1]), format="json").json()[
        "build_id"
    ]
    template_customize(
        platform=platform, notification_type=ENROLLMENT, changes={"email_subject": "Edited {{ course_name }}"}
    )
    send(build_id)
    assert {m["title"] for m in locmem.outbox["email"]} == {"Edited Python 101"}


def test_template_on_a_channel_it_does_not_deliver_over(client, people):
    r = client.post(BASE + "preview/", by_template(default_id(ENROLLMENT), channels=[1, 4]), format="json")
    assert (r.status_code, r.json()) == (400, {"detail": f"The {ENROLLMENT} template does not deliver over: sms."})


def test_disabled_type_is_refused(client, platform, people):
    template_toggle(platform=platform, notification_type=ENROLLMENT, enabled=False)
    r = client.post(BASE + "preview/", by_template(default_id(ENROLLMENT)), format="json")
    assert (r.status_code, r.json()) == (
        400,
        {"detail": f"Notification type {ENROLLMENT} is disabled for this platform."},
    )


def test_template_of_another_platform_is_unknown(client, people):
    from notifications.tests.factories import PlatformFactory

    theirs, _ = template_customize(platform=PlatformFactory(key="globex"), notification_type=ENROLLMENT, changes={})
    r = client.post(BASE + "preview/", by_template(str(theirs.template.pk)), format="json")
    assert (r.status_code, r.json()) == (400, {"detail": f"Template '{theirs.template.pk}' not found."})


def test_type_disabled_between_preview_and_send_fails_the_build(client, send, platform, people):
    build_id = client.post(BASE + "preview/", by_template(default_id(ENROLLMENT)), format="json").json()["build_id"]
    template_toggle(platform=platform, notification_type=ENROLLMENT, enabled=False)
    send(build_id)
    build = Build.objects.get(pk=build_id)
    assert (build.status, build.error) == (
        BuildStatus.FAILED,
        f"Notification type {ENROLLMENT} is disabled for this platform.",
    )
    assert locmem.outbox["email"] == []


def test_same_template_to_the_same_people_is_a_duplicate(client, send, platform, people):
    first = client.post(BASE + "preview/", by_template(default_id(ENROLLMENT)), format="json").json()["build_id"]
    send(first)
    # The platform's copy is the same template (one per type).
    effective, _ = template_customize(platform=platform, notification_type=ENROLLMENT, changes={"name": "Mine"})
    second = client.post(BASE + "preview/", by_template(str(effective.template.pk)), format="json").json()
    assert second["warning"] is not None
    assert send(second["build_id"]).json()["message"] == "Similar notifications found"


def test_custom_content_renders_the_global_variables(client, send, platform, people):
    body = {
        "template_data": {
            "message_title": "News from {{ platform_name }}",
            "message_body": "{{ username }}: {{ topic }}",
        },
        "channels": [1],
        "sources": [{"type": "username", "data": "jane"}, {"type": "email", "data": "guest@outside.org"}],
        "context": {"topic": "exams"},
    }
    build_id = client.post(BASE + "preview/", body, format="json").json()["build_id"]
    send(build_id)
    mail = {m["address"]: m for m in locmem.outbox["email"]}
    assert mail["jane@example.com"]["title"] == "News from Acme Learning"
    assert mail["jane@example.com"]["body"] == "jane: exams"
    assert mail["guest@outside.org"]["body"] == "guest: exams"  # no account: the address's local part


def test_custom_content_cannot_reach_outside_the_sandbox(client, people):
    for source in ("{% load static %}", '{% include "admin/base.html" %}', "{% debug %}"):
        body = {
            "template_data": {"message_title": "x", "message_body": source},
            "channels": [1],
            "sources": [{"type": "username", "data": "jane"}],
        }
        r = client.post(BASE + "preview/", body, format="json")
        assert r.status_code == 400
        assert r.json()["detail"].startswith("template_data.message_body: ")
        assert "not allowed" in r.json()["detail"]


def test_opted_out_recipient_is_not_sent_to(client, send, platform, people):
    UserNotificationPreference.objects.create(
        platform=platform, user=people["john"], notification_type="*", enabled=False
    )
    UserNotificationPreference.objects.create(
        platform=platform, user=people["jane"], notification_type=ENROLLMENT, channel="email", enabled=False
    )
    build_id = client.post(BASE + "preview/", by_template(default_id(ENROLLMENT)), format="json").json()["build_id"]
    send(build_id)
    assert locmem.outbox["email"] == []
    jane = BuildRecipient.objects.get(build_id=build_id, username="jane")
    john = BuildRecipient.objects.get(build_id=build_id, username="john")
    assert jane.status == "sent"  # in-app still reached her
    assert (john.status, john.error) == ("failed", "The recipient opted out of these notifications on every channel.")

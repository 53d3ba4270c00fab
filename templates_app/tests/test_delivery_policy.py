"""A type's channel fallback and escalation: set per platform with the template, inherited from the default."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import scheduler
from notifications.backends import locmem
from notifications.models import InboxStatus, Notification
from notifications.pipeline import Recipient, notification_send
from notifications.tests.factories import PlatformFactory
from templates_app.messages import renderer_for
from templates_app.models import NotificationTemplate, UserNotificationPreference
from templates_app.selectors import delivery_policies, template_for_type

from .conftest import BASE, EVENTS

pytestmark = pytest.mark.django_db
ENROLL_TYPE = "USER_NOTIF_COURSE_ENROLLMENT"
ENROLL = BASE + ENROLL_TYPE + "/"


def post_event(client, channels, recipients=("jane.doe",)):
    body = {
        "type": ENROLL_TYPE,
        "context": {"course_name": "Introduction to Data Science"},
        "recipients": list(recipients),
        "channels": channels,
    }
    r = client.post(EVENTS, body, format="json")
    assert r.status_code == 200, r.json()
    return r.json()


def test_patch_sets_the_policy_on_the_platforms_copy(admin_api, platform):
    r = admin_api.patch(
        ENROLL,
        {
            "fallback_channels": {"push_notification": "sms"},
            "escalation_channel": "email",
            "escalation_after_minutes": 30,
        },
        format="json",
    )
    assert r.status_code == 200, r.json()
    assert r.json()["delivery_policy"] == {
        "fallback_channels": {"push_notification": "sms"},
        "escalation_channel": "email",
        "escalation_after_minutes": 30,
    }
    assert r.json()["is_inherited"] is False
    assert admin_api.get(ENROLL).json()["delivery_policy"]["escalation_after_minutes"] == 30

    # Omitted fields keep their value; "" turns the escalation off.
    r = admin_api.patch(ENROLL, {"escalation_channel": ""}, format="json")
    assert r.json()["delivery_policy"] == {
        "fallback_channels": {"push_notification": "sms"},
        "escalation_channel": "",
        "escalation_after_minutes": None,
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"fallback_channels": {"in_app": "email"}}, "fallback_channels"),
        ({"fallback_channels": {"sms": "sms"}}, "fallback_channels"),
        ({"fallback_channels": {"push_notification": "fax"}}, "fallback_channels"),
        ({"escalation_channel": "email"}, "escalation_after_minutes"),
        ({"escalation_channel": "in_app", "escalation_after_minutes": 5}, "escalation_channel"),
        ({"escalation_channel": "email", "escalation_after_minutes": 0}, "escalation_after_minutes"),
    ],
)
def test_bad_policies_are_400_and_write_nothing(admin_api, platform, body, field):
    r = admin_api.patch(ENROLL, body, format="json")
    assert r.status_code == 400, r.json()
    assert field in r.json()
    assert not NotificationTemplate.objects.filter(platform=platform, type=ENROLL_TYPE).exists()


def test_platforms_inherit_the_default_until_they_customise(platform):
    NotificationTemplate.objects.filter(platform__isnull=True, type=ENROLL_TYPE).update(
        delivery_policy={"fallback": {"push_notification": "sms"}}
    )
    other = PlatformFactory(key="other-school")
    NotificationTemplate.objects.create(
        platform=other, type=ENROLL_TYPE, name="Own", delivery_policy={"fallback": {"email": "push_notification"}}
    )

    assert delivery_policies(platform_id=platform.pk, notification_types=[ENROLL_TYPE])[ENROLL_TYPE].fallback == {
        "push_notification": "sms"
    }
    assert delivery_policies(platform_id=other.pk, notification_types=[ENROLL_TYPE])[ENROLL_TYPE].fallback == {
        "email": "push_notification"
    }
    assert delivery_policies(platform_id=platform.pk, notification_types=["NO_SUCH_TYPE"]) == {}


def test_event_path_falls_back_from_push_to_sms(admin_api, make_user):
    jane = make_user("jane.doe", email="jane@example.com", phone_number="+251911000001")
    admin_api.patch(ENROLL, {"fallback_channels": {"push_notification": "sms"}}, format="json")

    body = post_event(admin_api, ["push_notification"])  # jane has no device

    rows = {n.channel: n for n in Notification.objects.filter(source=f"event:{body['id']}", user=jane)}
    assert rows["push_notification"].error == "No active push device"
    assert (rows["sms"].rule, rows["sms"].delivery_status) == ("fallback", "sent")
    [sms] = locmem.outbox["sms"]
    assert sms["address"] == "+251911000001"
    assert "Introduction to Data Science" in sms["body"]  # rendered for SMS from the template


def test_an_email_refused_for_good_falls_back_to_the_templates_sms_text(admin_api, make_user):
    jane = make_user("jane.doe", email="jane@example.com", phone_number="+251911000001")
    admin_api.patch(ENROLL, {"fallback_channels": {"email": "sms"}}, format="json")
    locmem.fail_for["jane@example.com"] = "550 5.1.1 mailbox unavailable"

    body = post_event(admin_api, ["email"])

    rows = {n.channel: n for n in Notification.objects.filter(source=f"event:{body['id']}", user=jane)}
    assert rows["email"].title == "Welcome to Introduction to Data Science"  # the email subject
    sms = rows["sms"]
    assert (sms.rule, sms.delivery_status) == ("fallback", "sent")
    # Rendered for SMS from the template, not the email's subject, body and HTML.
    assert (sms.title, sms.body, sms.html) == ("", "You have been enrolled in Introduction to Data Science.", "")
    assert sms.context == rows["email"].context
    [sent] = locmem.outbox["sms"]
    assert (sent["address"], sent["body"]) == (
        "+251911000001",
        "You have been enrolled in Introduction to Data Science.",
    )


def test_a_fallback_keeps_the_original_content_when_the_template_changed_since(
    admin_api, make_user, platform, django_capture_on_commit_callbacks
):
    jane = make_user("jane.doe", email="jane@example.com", phone_number="+251911000001")
    admin_api.patch(ENROLL, {"fallback_channels": {"email": "sms"}}, format="json")
    locmem.fail_for["jane@example.com"] = "550 5.1.1 mailbox unavailable"
    template = template_for_type(platform=platform, notification_type=ENROLL_TYPE).template
    render = renderer_for(platform=platform, channels=["email"], template=template, context={"course_name": "AI"})
    with django_capture_on_commit_callbacks() as queued:
        notification_send(
            platform=platform,
            source="test:edited",
            channels=["email"],
            recipients=[Recipient(user_id=jane.pk)],
            render=render,
            wait=False,
        )
    # The email is refused after the template was edited: its fallback says what the email said.
    NotificationTemplate.objects.filter(platform=platform, type=ENROLL_TYPE).update(
        message_body="Edited", short_message_body="Edited"
    )
    for callback in queued:
        callback()

    rows = {n.channel: n for n in Notification.objects.filter(source="test:edited")}
    assert rows["email"].delivery_status == "failed"
    assert (rows["sms"].rule, rows["sms"].delivery_status) == ("fallback", "sent")
    assert (rows["sms"].title, rows["sms"].body) == ("Welcome to AI", "Hi jane.doe,\nYou have been enrolled in AI.")


def test_no_fallback_to_a_channel_the_user_opted_out_of(admin_api, make_user, platform):
    jane = make_user("jane.doe", phone_number="+251911000001")
    UserNotificationPreference.objects.create(
        platform=platform, user=jane, notification_type=ENROLL_TYPE, channel="sms", enabled=False
    )
    admin_api.patch(ENROLL, {"fallback_channels": {"push_notification": "sms"}}, format="json")

    body = post_event(admin_api, ["push_notification"])

    assert not Notification.objects.filter(source=f"event:{body['id']}", channel="sms").exists()
    assert locmem.outbox["sms"] == []


def test_event_path_escalates_unread_in_app(admin_api, make_user):
    make_user("jane.doe", email="jane@example.com")
    bob = make_user("bob", email="bob@example.com")
    admin_api.patch(ENROLL, {"escalation_channel": "email", "escalation_after_minutes": 15}, format="json")
    sent_at = timezone.now()

    body = post_event(admin_api, ["in_app"], recipients=["jane.doe", "bob"])
    Notification.objects.filter(source=f"event:{body['id']}", user=bob).update(status=InboxStatus.READ)

    scheduler.sweep(now=sent_at + timedelta(minutes=16))
    scheduler.sweep(now=sent_at + timedelta(minutes=60))

    [mail] = locmem.outbox["email"]
    assert mail["address"] == "jane@example.com"
    assert mail["title"] == "You have been enrolled in Introduction to Data Science"
    assert Notification.objects.get(source=f"event:{body['id']}", channel="email").rule == "escalation"

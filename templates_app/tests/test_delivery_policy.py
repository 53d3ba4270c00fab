"""A type's channel fallback and escalation: set per platform with the template, inherited from the default."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import scheduler
from notifications.backends import locmem
from notifications.models import InboxStatus, Notification
from notifications.tests.factories import PlatformFactory
from templates_app.models import NotificationTemplate, UserNotificationPreference
from templates_app.selectors import delivery_policies

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

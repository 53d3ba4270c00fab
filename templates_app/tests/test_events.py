"""Automatic notifications: POST /orgs/{org}/events/ through the platform's template into the pipeline."""

import pytest

from notifications.backends import locmem
from notifications.models import DeliveryStatus, Notification
from templates_app.models import NotificationEvent

from .conftest import BASE, EVENTS

pytestmark = pytest.mark.django_db
ENROLL = BASE + "USER_NOTIF_COURSE_ENROLLMENT/"


def post_event(client, **body):
    body.setdefault("type", "USER_NOTIF_COURSE_ENROLLMENT")
    body.setdefault("context", {"course_name": "Introduction to Data Science"})
    return client.post(EVENTS, body, format="json")


def test_event_goes_through_copy_then_default_then_nowhere(admin_api, learner):
    # 1. the platform's own copy
    admin_api.patch(ENROLL, {"message_title": "Acme: you are in {{ course_name }}"}, format="json")
    r = post_event(admin_api, recipients=["jane.doe"])
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["status"] == "processed" and body["template"]["is_inherited"] is False
    assert body["template"]["source_platform"] == "acme-learning"
    inbox = Notification.objects.get(user=learner, channel="in_app", source=f"event:{body['id']}")
    assert inbox.title == "Acme: you are in Introduction to Data Science"
    assert inbox.delivery_status == DeliveryStatus.SENT
    assert inbox.notification_type == "USER_NOTIF_COURSE_ENROLLMENT"

    # 2. after reset, the shipped default
    admin_api.post(ENROLL + "reset/")
    body = post_event(admin_api, recipients=["jane.doe"]).json()
    assert body["template"]["is_inherited"] is True and body["template"]["source_platform"] == "main"
    inbox = Notification.objects.get(user=learner, channel="in_app", source=f"event:{body['id']}")
    assert inbox.title == "You have been enrolled in Introduction to Data Science"
    assert inbox.body == "Hi jane.doe,\nYou have been enrolled in Introduction to Data Science."

    # 3. toggled off: accepted, reported as skipped, nothing delivered
    admin_api.patch(ENROLL + "toggle/", {"allow_notification": False}, format="json")
    before = Notification.objects.count()
    r = post_event(admin_api, recipients=["jane.doe"])
    assert r.status_code == 200
    assert r.json()["status"] == "skipped"
    assert r.json()["reason"] == "Notification type USER_NOTIF_COURSE_ENROLLMENT is disabled for this platform."
    assert r.json()["deliveries"] == {} and r.json()["sent"] == 0
    assert Notification.objects.count() == before


def test_answer_counts_deliveries_per_channel(admin_api, learner):
    body = post_event(admin_api, recipients=["jane.doe"]).json()
    assert body["channels"] == ["email", "push_notification", "in_app"]
    assert body["deliveries"]["email"] == {"sent": 1, "failed": 0, "pending": 0, "suppressed": 0, "opted_out": 0}
    assert body["deliveries"]["in_app"]["sent"] == 1
    # push reaches devices; the test backend reports it sent
    assert body["deliveries"]["push_notification"]["sent"] == 1
    assert (body["sent"], body["failed"], body["pending"]) == (3, 0, 0)
    assert body["recipients"] == {"requested": 1, "resolved": 1, "unresolved": []}
    [mail] = locmem.outbox["email"]
    assert mail["address"] == "jane@example.com"
    assert mail["title"] == "Welcome to Introduction to Data Science"
    assert "<strong>Introduction to Data Science</strong>" in mail["html"]


def test_recipients_by_username_id_email_and_bare_address(admin_api, make_user, learner):
    bob = make_user("bob", email="Bob@Example.com")
    from notifications.tests.factories import PlatformFactory, make_member

    outsider = make_member(platform=PlatformFactory(key="globex"), username="outsider")
    body = post_event(
        admin_api,
        recipients=[
            "jane.doe",
            bob.pk,
            "bob@example.com",  # the same person again, by email: one delivery
            "guest@elsewhere.org",  # no account: email only
            "nobody",
            outsider.username,  # not on this platform
            {"username": "jane.doe", "context": {"course_name": "ignored duplicate"}},
        ],
    ).json()
    assert body["recipients"]["resolved"] == 3
    assert body["recipients"]["unresolved"] == ["nobody", "outsider"]
    assert body["deliveries"]["email"]["sent"] == 3
    assert body["deliveries"]["in_app"]["sent"] == 2
    addresses = sorted(m["address"] for m in locmem.outbox["email"])
    assert addresses == ["Bob@Example.com", "guest@elsewhere.org", "jane@example.com"]
    assert not Notification.objects.filter(user=outsider).exists()


def test_per_recipient_context(admin_api, learner, make_user):
    make_user("bob")
    post_event(
        admin_api,
        recipients=[{"username": "jane.doe", "context": {"course_name": "Python"}}, "bob"],
        context={"course_name": "Default course"},
        channels=["in_app"],
    )
    titles = dict(Notification.objects.filter(channel="in_app").values_list("user__username", "title"))
    assert titles == {"jane.doe": "You have been enrolled in Python", "bob": "You have been enrolled in Default course"}


def test_channels_subset_and_refusal(admin_api, learner):
    body = post_event(admin_api, recipients=["jane.doe"], channels=["in_app"]).json()
    assert body["channels"] == ["in_app"] and list(body["deliveries"]) == ["in_app"]
    r = post_event(admin_api, recipients=["jane.doe"], channels=["sms"])
    assert r.status_code == 400
    assert r.json() == {"channels": ["The USER_NOTIF_COURSE_ENROLLMENT template does not deliver over: sms."]}


def test_event_id_makes_posting_idempotent(admin_api, learner):
    first = post_event(admin_api, recipients=["jane.doe"], event_id="enroll-42").json()
    again = post_event(admin_api, recipients=["jane.doe"], event_id="enroll-42").json()
    assert again["id"] == first["id"] and again["event_id"] == "enroll-42"
    assert len(locmem.outbox["email"]) == 1
    assert Notification.objects.filter(user=learner, channel="in_app").count() == 1
    r = post_event(admin_api, recipients=["jane.doe"], event_id="enroll-42", context={"course_name": "Other"})
    assert r.status_code == 409
    assert NotificationEvent.objects.count() == 1


def test_render_failure_is_a_400_and_writes_nothing(admin_api, learner, settings):
    settings.NOTIFY_TEMPLATE_MAX_OUTPUT_CHARS = 50
    r = post_event(admin_api, recipients=["jane.doe"], context={"course_name": "x" * 100})
    assert r.status_code == 400
    assert "failed to render" in r.json()["template"][0]
    assert not Notification.objects.exists()


def test_validation_errors(admin_api):
    r = admin_api.post(EVENTS, {"type": "NOPE", "recipients": ["a"]}, format="json")
    assert r.status_code == 400 and r.json() == {"type": ["Unknown notification type 'NOPE'."]}
    r = admin_api.post(EVENTS, {"type": "USER_NOTIF_COURSE_ENROLLMENT"}, format="json")
    assert r.status_code == 400 and r.json() == {"recipients": ["This list may not be empty."]}
    r = admin_api.post(EVENTS, {"type": "USER_NOTIF_COURSE_ENROLLMENT", "recipients": [True]}, format="json")
    assert r.status_code == 400 and "recipients" in r.json()
    r = admin_api.post(EVENTS, {"type": "USER_NOTIF_COURSE_ENROLLMENT", "recipients": ["a"], "x": 1}, format="json")
    assert r.status_code == 400 and "x" in r.json()


def test_who_may_post_events(api, make_user, learner, platform):
    from django.contrib.auth.models import Permission

    from notifications.tests.factories import PlatformFactory, make_member

    assert post_event(api(learner), recipients=["jane.doe"]).status_code == 403
    service = make_user("lms-bot", is_service_account=True)
    service.memberships.get().permissions.add(Permission.objects.get(codename="ibl_event_send"))
    assert post_event(api(service), recipients=["jane.doe"]).status_code == 200
    foreign = make_member(platform=PlatformFactory(key="globex"), username="globex-admin", admin=True)
    assert post_event(api(foreign), recipients=["jane.doe"]).status_code == 404
    assert post_event(api(), recipients=["jane.doe"]).status_code == 401


def test_custom_notification_type_end_to_end(admin_api, learner):
    r = admin_api.post(
        BASE,
        {
            "type": "WEEKLY_DIGEST",
            "name": "Weekly digest",
            "message_title": "Your week: {{ highlight }}",
            "message_body": "Hi {{ username }}, {{ highlight }}.",
            "channel_ids": [3],
            "available_context": {"highlight": "The week's highlight"},
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    created = r.json()
    assert created["id"].startswith("custom_") and created["is_custom"] is True
    assert created["warnings"] == []
    listing = admin_api.get(BASE).json()
    assert listing[-1]["type"] == "WEEKLY_DIGEST" and len(listing) == 24
    body = post_event(
        admin_api, type="WEEKLY_DIGEST", recipients=["jane.doe"], context={"highlight": "3 new courses"}
    ).json()
    assert body["deliveries"] == {"in_app": {"sent": 1, "failed": 0, "pending": 0, "suppressed": 0, "opted_out": 0}}
    assert Notification.objects.get(user=learner).title == "Your week: 3 new courses"
    assert admin_api.post(BASE + "WEEKLY_DIGEST/reset/").status_code == 400
    assert admin_api.delete(BASE + "WEEKLY_DIGEST/").json() == {
        "message": "Custom notification type deleted.",
        "deleted": True,
    }
    assert admin_api.get(BASE + "WEEKLY_DIGEST/").status_code == 404
    r = admin_api.post(BASE, {"type": "USER_NOTIF_COURSE_ENROLLMENT", "name": "x"}, format="json")
    assert r.status_code == 400 and "type" in r.json()
    assert admin_api.delete(ENROLL).status_code == 400

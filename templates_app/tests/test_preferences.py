"""Per-user opt-outs: the API, and every send path respecting them."""

import pytest

from notifications.backends import locmem
from notifications.models import Notification
from notifications.pipeline import Message, Recipient, notification_send
from templates_app.selectors import preference_allows

from .conftest import EVENTS

pytestmark = pytest.mark.django_db
PREFS = "/api/notification/v1/orgs/acme-learning/users/{}/preferences/"


@pytest.fixture
def jane_api(api, learner):
    return api(learner, keyword="Token")


def test_read_defaults_to_everything_on(jane_api):
    r = jane_api.get(PREFS.format("jane.doe"))
    assert r.status_code == 200
    body = r.json()
    assert body["username"] == "jane.doe" and body["platform"] == "acme-learning"
    assert body["channels"] == ["email", "sms", "push_notification", "in_app"]
    assert len(body["preferences"]) == 23
    inactivity = next(p for p in body["preferences"] if p["type"] == "USER_NOTIF_USER_INACTIVITY")
    assert inactivity["channels"] == {"email": True, "sms": True, "push_notification": True, "in_app": True}
    assert inactivity["is_critical"] is False
    role = next(p for p in body["preferences"] if p["type"] == "ROLE_CHANGE")
    assert role["is_critical"] is True
    proactive = next(p for p in body["preferences"] if p["type"] == "PROACTIVE_LEARNER_NOTIFICATION")
    assert proactive["is_enabled_on_platform"] is False


def test_write_per_type_and_channel(jane_api, learner, platform):
    r = jane_api.patch(
        PREFS.format("jane.doe"),
        {"preferences": [{"type": "USER_NOTIF_USER_INACTIVITY", "channel": "email", "enabled": False}]},
        format="json",
    )
    assert r.status_code == 200
    item = next(p for p in r.json()["preferences"] if p["type"] == "USER_NOTIF_USER_INACTIVITY")
    assert item["channels"]["email"] is False and item["channels"]["in_app"] is True
    assert not preference_allows(
        platform=platform, user=learner, notification_type="USER_NOTIF_USER_INACTIVITY", channel="email"
    )
    assert preference_allows(
        platform=platform, user=learner, notification_type="USER_NOTIF_USER_INACTIVITY", channel="in_app"
    )
    # every channel at once, then one back on: the most specific choice wins
    jane_api.patch(
        PREFS.format("jane.doe"),
        {
            "preferences": [
                {"type": "USER_NOTIF_USER_INACTIVITY", "enabled": False},
                {"type": "USER_NOTIF_USER_INACTIVITY", "channel": "push_notification", "enabled": True},
            ]
        },
        format="json",
    )
    item = next(
        p
        for p in jane_api.get(PREFS.format("jane.doe")).json()["preferences"]
        if p["type"] == "USER_NOTIF_USER_INACTIVITY"
    )
    assert item["channels"] == {"email": False, "sms": False, "push_notification": True, "in_app": False}
    r = jane_api.delete(PREFS.format("jane.doe"))
    item = next(p for p in r.json()["preferences"] if p["type"] == "USER_NOTIF_USER_INACTIVITY")
    assert all(item["channels"].values())


def test_critical_types_cannot_be_turned_off(jane_api):
    r = jane_api.patch(
        PREFS.format("jane.doe"), {"preferences": [{"type": "ROLE_CHANGE", "enabled": False}]}, format="json"
    )
    assert r.status_code == 400
    assert r.json() == {
        "preferences": ["[0].type: ROLE_CHANGE is a critical notification type and cannot be turned off."]
    }
    r = jane_api.patch(PREFS.format("jane.doe"), {"preferences": [{"type": "NOPE", "enabled": False}]}, format="json")
    assert r.status_code == 400


def test_only_yourself_or_your_platform_admin(api, jane_api, make_user, admin_api):
    make_user("bob")
    assert jane_api.get(PREFS.format("bob")).status_code == 404
    assert admin_api.get(PREFS.format("jane.doe")).status_code == 200
    assert admin_api.get(PREFS.format("ghost")).status_code == 404
    assert api().get(PREFS.format("jane.doe")).status_code == 401


def test_events_respect_opt_outs_but_not_for_critical_types(jane_api, admin_api, learner):
    jane_api.patch(
        PREFS.format("jane.doe"),
        {
            "preferences": [
                {"type": "*", "channel": "email", "enabled": False},
                {"type": "USER_NOTIF_COURSE_ENROLLMENT", "channel": "in_app", "enabled": False},
            ]
        },
        format="json",
    )
    body = admin_api.post(
        EVENTS,
        {"type": "USER_NOTIF_COURSE_ENROLLMENT", "recipients": ["jane.doe"], "context": {"course_name": "DS"}},
        format="json",
    ).json()
    assert body["deliveries"]["email"] == {"sent": 0, "failed": 0, "pending": 0, "suppressed": 0, "opted_out": 1}
    assert body["deliveries"]["in_app"]["opted_out"] == 1
    assert body["deliveries"]["push_notification"]["sent"] == 1
    assert body["opted_out"] == 2
    assert locmem.outbox["email"] == []
    body = admin_api.post(
        EVENTS, {"type": "ROLE_CHANGE", "recipients": ["jane.doe"], "context": {"role": "Instructor"}}, format="json"
    ).json()
    assert body["deliveries"]["email"]["sent"] == 1  # critical: opt-outs do not apply


def test_every_send_path_respects_opt_outs(jane_api, learner, platform, make_user):
    """A direct pipeline send (bulk, scheduled, builder all end here) drops opted-out recipients too."""
    bob = make_user("bob")
    jane_api.patch(
        PREFS.format("jane.doe"), {"preferences": [{"type": "*", "channel": "in_app", "enabled": False}]}, format="json"
    )
    result = notification_send(
        platform=platform,
        source="bulk:test",
        channels=["in_app"],
        recipients=[Recipient(user_id=learner.pk), Recipient(user_id=bob.pk)],
        message=Message(title="Maintenance", notification_type="system_alert"),
    )
    assert result.sent == 1
    assert list(Notification.objects.values_list("user__username", flat=True)) == ["bob"]


def test_unsubscribe_link(api, learner, platform, settings, admin_api):
    settings.PUBLIC_BASE_URL = "https://notify.example.com"
    admin_api.post(
        EVENTS,
        {
            "type": "USER_NOTIF_USER_INACTIVITY",
            "recipients": ["jane.doe"],
            "context": {"days_inactive": 9},
            "channels": ["email"],
        },
        format="json",
    )
    html = locmem.outbox["email"][0]["html"]
    start = html.index("https://notify.example.com/api/notification/v1/unsubscribe/")
    url = html[start : html.index('"', start)]
    path = url.removeprefix("https://notify.example.com")
    anon = api()
    page = anon.get(path)
    assert page.status_code == 200 and b"User Inactivity" in page.content
    assert anon.post(path).status_code == 200
    assert not preference_allows(
        platform=platform, user=learner, notification_type="USER_NOTIF_USER_INACTIVITY", channel="email"
    )
    assert anon.get("/api/notification/v1/unsubscribe/forged-token/").status_code == 404
    # critical types carry no unsubscribe link
    admin_api.post(EVENTS, {"type": "ROLE_CHANGE", "recipients": ["jane.doe"], "context": {"role": "x"}}, format="json")
    assert "unsubscribe" not in locmem.outbox["email"][-1]["html"].lower()


def test_opt_outs_are_found_among_many_recipients_in_every_chunk(platform, make_user, settings):
    """The filter asks about a whole write chunk at once (one array parameter on PostgreSQL)."""
    from templates_app.models import UserNotificationPreference

    settings.NOTIFY_WRITE_CHUNK = 20
    users = [make_user(f"learner{i:02d}") for i in range(50)]
    opted_out = {users[3].pk, users[27].pk, users[49].pk}
    for pk in opted_out:
        UserNotificationPreference.objects.create(
            platform=platform, user_id=pk, notification_type="*", channel="in_app", enabled=False
        )
    result = notification_send(
        platform=platform,
        source="bulk:many",
        channels=["in_app"],
        recipients=[Recipient(user_id=u.pk) for u in users],
        message=Message(title="Maintenance", notification_type="system_alert"),
    )
    assert result.sent == 47
    reached = set(Notification.objects.filter(source="bulk:many").values_list("user_id", flat=True))
    assert reached == {u.pk for u in users} - opted_out

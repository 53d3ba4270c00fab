"""The suppression list: its API for platform admins, and the send-time skip."""

from __future__ import annotations

import pytest

from notifications.models import Notification, Suppression
from notifications.pipeline import Message, Recipient, notification_send
from notifications.suppressions import suppression_add
from notifications.tests.factories import PlatformFactory, make_member

pytestmark = pytest.mark.django_db

BASE = "/api/notification/v1/platforms/{key}/suppressions/"


@pytest.fixture
def boss(platform):
    return make_member(platform=platform, username="boss", role="ADMIN", admin=True)


def entry(platform, address, *, channel="email", reason="hard_bounce", **fields):
    return suppression_add(
        platform_id=platform.pk, channel=channel, address=address, reason=reason, source="Postmark", **fields
    )[0]


def test_admin_lists_filters_reads_and_lifts_entries(api, platform, boss):
    gone = entry(platform, "Gone@Example.org")
    entry(platform, "+251911234567", channel="sms", reason="invalid_number")
    entry(platform, "spam@example.org", reason="complaint")
    client = api(boss)
    url = BASE.format(key=platform.key)

    listed = client.get(url).json()
    assert listed["count"] == 3
    assert {r["address"] for r in listed["results"]} == {"gone@example.org", "+251911234567", "spam@example.org"}
    assert [r["address"] for r in client.get(url, {"channel": "sms"}).json()["results"]] == ["+251911234567"]
    assert [r["address"] for r in client.get(url, {"reason": "complaint"}).json()["results"]] == ["spam@example.org"]
    assert [r["address"] for r in client.get(url, {"address": "GONE"}).json()["results"]] == ["gone@example.org"]
    detail = client.get(f"{url}{gone.pk}/").json()
    assert (detail["reason"], detail["source"], detail["channel"]) == ("hard_bounce", "Postmark", "email")

    assert client.delete(f"{url}{gone.pk}/").status_code == 204
    assert not Suppression.objects.filter(pk=gone.pk).exists()
    assert client.delete(f"{url}{gone.pk}/").status_code == 404


def test_bad_filters_are_400_and_other_platforms_entries_are_404(api, platform, boss):
    other = PlatformFactory(key="other-school")
    theirs = entry(other, "theirs@example.org")
    client = api(boss)
    url = BASE.format(key=platform.key)
    assert client.get(url, {"reason": "nope"}).status_code == 400
    assert client.get(url, {"channel": "push"}).status_code == 400
    assert client.get(f"{url}{theirs.pk}/").status_code == 404
    assert client.delete(f"{url}{theirs.pk}/").status_code == 404
    assert Suppression.objects.filter(pk=theirs.pk).exists()
    assert client.get(BASE.format(key=other.key)).status_code == 404  # not a member there


def test_members_cannot_see_the_list(api, platform, make_user):
    learner = make_user("learner")
    assert api(learner).get(BASE.format(key=platform.key)).status_code == 403


def test_adding_twice_keeps_the_first_entry(platform):
    first, created = suppression_add(
        platform_id=platform.pk, channel="email", address="a@example.org", reason="hard_bounce", source="Postmark"
    )
    again, created_again = suppression_add(
        platform_id=platform.pk, channel="email", address="A@example.org", reason="complaint", source="Mailgun"
    )
    assert created and not created_again and again.pk == first.pk and again.reason == "hard_bounce"


def test_a_type_scoped_entry_skips_only_that_type(platform):
    entry(platform, "ada@example.org", reason="unsubscribed", notification_type="weekly_digest")

    def send(source, notification_type):
        notification_send(
            platform=platform,
            source=source,
            channels=["email"],
            recipients=[Recipient(address="ada@example.org")],
            message=Message(title="Hi", body="Hi", notification_type=notification_type),
        )
        return Notification.objects.get(source=source)

    assert send("t:1", "weekly_digest").delivery_status == "suppressed"
    assert send("t:2", "system_alert").delivery_status == "sent"


def test_suppressed_sms_numbers_are_skipped_too(platform, make_user):
    learner = make_user("learner", phone_number="+251911234567")
    entry(platform, "+251 91 123 4567", channel="sms", reason="invalid_number")
    result = notification_send(
        platform=platform,
        source="sms:1",
        channels=["sms", "in_app"],
        recipients=[Recipient(user_id=learner.pk)],
        message=Message(title="Hi", body="Hi"),
    )
    rows = {n.channel: n for n in Notification.objects.filter(source="sms:1")}
    assert (rows["sms"].delivery_status, rows["sms"].rule) == ("suppressed", "suppression_list")
    assert rows["in_app"].delivery_status == "sent"  # the list holds addresses; the inbox has none
    assert result.suppressed == 1


# -- the admin ---------------------------------------------------------------------------


def test_platform_admin_sees_and_lifts_only_their_platforms_entries(client, platform):
    from django.urls import reverse

    other = PlatformFactory(key="other-school")
    mine = entry(platform, "mine@example.org")
    theirs = entry(other, "theirs@example.org")
    boss = make_member(platform=platform, username="staffboss", admin=True, is_staff=True)
    client.force_login(boss)
    changelist = reverse("admin:notifications_suppression_changelist")

    html = client.get(changelist).content.decode()
    assert "mine@example.org" in html and "theirs@example.org" not in html
    assert client.get(reverse("admin:notifications_suppression_change", args=[theirs.pk])).status_code in (302, 404)

    r = client.post(changelist, {"action": "lift", "_selected_action": [mine.pk, theirs.pk]})
    assert r.status_code == 302
    assert list(Suppression.objects.values_list("address", flat=True)) == ["theirs@example.org"]


def test_delivery_page_shows_its_receipt(client, platform):
    from django.urls import reverse
    from django.utils import timezone

    from notifications.models import DeliveryReceipt

    root = make_member(platform=platform, username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    row = Notification.objects.create(
        platform=platform, recipient_key="email:a@example.org", address="a@example.org", channel="email", source="r:1"
    )
    DeliveryReceipt.objects.create(
        notification=row, platform=platform, provider="Postmark", provider_status="opened", last_event_at=timezone.now()
    )
    html = client.get(reverse("admin:notifications_notification_change", args=[row.pk])).content.decode()
    assert "Postmark" in html and "Opened" in html


def test_critical_mail_passes_an_unsubscribe_but_not_a_bounce(platform):
    entry(platform, "bounced@example.org", reason="hard_bounce")
    entry(platform, "optout@example.org", reason="unsubscribed")
    notification_send(
        platform=platform,
        source="crit:1",
        channels=["email"],
        recipients=[Recipient(address="bounced@example.org"), Recipient(address="optout@example.org")],
        message=Message(title="Password reset", body="Reset it", critical=True),
    )
    statuses = dict(Notification.objects.filter(source="crit:1").values_list("address", "delivery_status"))
    assert statuses == {"bounced@example.org": "suppressed", "optout@example.org": "sent"}


def test_lifting_an_entry_lets_the_next_send_through(api, platform, boss):
    gone = entry(platform, "back@example.org")
    api(boss).delete(f"{BASE.format(key=platform.key)}{gone.pk}/")
    notification_send(
        platform=platform,
        source="lift:1",
        channels=["email"],
        recipients=[Recipient(address="back@example.org")],
        message=Message(title="Hi", body="Hi"),
    )
    assert Notification.objects.get(source="lift:1").delivery_status == "sent"

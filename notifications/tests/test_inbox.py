"""The inbox: /api/v1 list and unread count, status services, counters that stay exact."""

from __future__ import annotations

import pytest
from django.db import connection

from notifications import inbox, selectors
from notifications.models import InboxCounter, Notification
from notifications.pipeline import Message, Recipient, dispatch, notification_send, write
from notifications.tests.factories import PlatformFactory

pytestmark = pytest.mark.django_db

LIST, UNREAD = "/api/v1/notifications", "/api/v1/notifications/unread"


def _send(platform, users, source, channels=("in_app",), title="Hello"):
    return notification_send(
        platform=platform,
        source=source,
        channels=list(channels),
        recipients=[Recipient(user_id=u.pk) for u in users],
        message=Message(title=title, body=f"Body of {title}"),
    )


def _counter(user, platform):
    return selectors.inbox_counts(user=user, platform=platform)


def _recount(user, platform):
    rows = selectors.inbox_for(user=user, platform=platform)
    return {s: rows.filter(status=s).count() for s in ("UNREAD", "READ", "CANCELLED")}


def test_list_is_newest_first_in_the_envelope_and_leaves_out_dismissed(make_user, api, platform):
    jane = make_user("jane")
    for n in range(5):
        _send(platform, [jane], f"bulk:{n}", title=f"n{n}")
    dismissed = Notification.objects.get(source="bulk:1")
    inbox.inbox_status_set(user=jane, platform=platform, ids=[dismissed.pk], status="CANCELLED")
    response = api(jane).get(LIST, {"limit": 2, "offset": 0})
    assert response.status_code == 200
    body = response.json()
    assert (body["message"], body["success"], body["status_code"], body["metadata"]) == (
        "Notifications retrieved",
        True,
        200,
        None,
    )
    data = body["data"]
    assert (data["total_count"], data["limit"], data["offset"]) == (4, 2, 0)
    assert [n["payload"]["headline"] for n in data["notifications"]] == ["n4", "n3"]
    first = data["notifications"][0]
    assert set(first) == {"id", "recipient_id", "type", "level", "delivery_channel", "payload", "is_read", "timestamp"}
    page2 = api(jane).get(LIST, {"limit": 2, "offset": 2}).json()["data"]["notifications"]
    assert [n["payload"]["headline"] for n in page2] == ["n2", "n0"]


def test_pages_are_stable_when_one_send_wrote_many_rows_at_the_same_instant(make_user, api, platform):
    jane = make_user("jane")
    # One bulk send per channel gives rows of the same created_at; ids break the tie.
    _send(platform, [jane], "bulk:tie", channels=("in_app", "email", "sms", "push_notification"))
    client = api(jane)
    seen = []
    for offset in range(0, 4):
        seen += [n["id"] for n in client.get(LIST, {"limit": 1, "offset": offset}).json()["data"]["notifications"]]
    assert len(set(seen)) == 4
    assert seen == [n["id"] for n in client.get(LIST, {"limit": 4}).json()["data"]["notifications"]]


def test_the_page_selector_serves_the_rows_and_counts_of_the_queryset_selectors(make_user, platform):
    """`inbox_page` (one SQL statement on PostgreSQL) answers what `inbox_visible_for` and `inbox_counts` do."""
    from notifications.realtime_payload import PAYLOAD_FIELDS

    assert selectors.InboxRow._fields == PAYLOAD_FIELDS
    jane, bob = make_user("jane"), make_user("bob")
    other = PlatformFactory(key="other-platform")
    _send(platform, [jane], "bulk:tie", channels=("in_app", "email", "sms", "push_notification"))
    for n in range(6):
        _send(platform, [jane, bob], f"bulk:{n}", title=f"n{n}")
    _send(other, [jane], "bulk:other")
    rows = list(selectors.inbox_visible_for(user=jane, platform=platform, limit=20))
    inbox.inbox_status_set(user=jane, platform=platform, ids=[r.pk for r in rows[1:4]], status="READ")
    inbox.inbox_status_set(user=jane, platform=platform, ids=[rows[5].pk], status="CANCELLED")
    middle = selectors.inbox_visible_for(user=jane, platform=platform, limit=20)[4]
    for user in (jane, bob, make_user("nobody")):
        for limit, offset, unread_only, before in [
            (20, 0, False, None),
            (3, 0, False, None),
            (3, 2, False, None),
            (2, 1, True, None),
            (20, 50, False, None),
            (3, 0, False, (middle.created_at, middle.pk)),
            (3, 1, True, (middle.created_at, middle.pk)),
        ]:
            args = {"user": user, "platform": platform, "limit": limit, "offset": offset, "unread_only": unread_only}
            page, counts = selectors.inbox_page(**args, before=before)
            expected = selectors.inbox_visible_for(**args, before=before, fields=PAYLOAD_FIELDS)
            assert page == [selectors.InboxRow(*(getattr(n, f) for f in PAYLOAD_FIELDS)) for n in expected]
            assert counts == selectors.inbox_counts(user=user, platform=platform)
    assert selectors.inbox_page(user=jane, platform=platform, limit=20)[1] == {"UNREAD": 6, "READ": 3, "CANCELLED": 1}


def test_unread_count_and_list_are_per_user_and_platform(make_user, api, platform):
    jane, bob = make_user("jane"), make_user("bob")
    other = PlatformFactory(key="other-platform")
    _send(platform, [jane, bob], "bulk:a")
    _send(platform, [jane], "bulk:b")
    _send(other, [jane], "bulk:c")
    response = api(jane).get(UNREAD)
    assert response.status_code == 200
    assert response.json() == {
        "message": "Unread count retrieved",
        "data": {"unread": 2},
        "success": True,
        "status_code": 200,
        "metadata": None,
    }
    assert api(bob).get(UNREAD).json()["data"]["unread"] == 1
    assert api(jane).get(LIST).json()["data"]["total_count"] == 2


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"offset": "-1"}])
def test_bad_paging_is_a_400_in_the_v1_format(make_user, api, params):
    response = api(make_user("jane")).get(LIST, params)
    assert response.status_code == 400
    assert set(response.json()) == {"message", "error"}


def test_permissions_are_required(make_user, api):
    jane = make_user("jane")
    jane.memberships.update(is_active=False)
    client = api(jane)
    assert client.get(LIST).status_code == 403
    assert client.get(UNREAD).status_code == 403


def test_every_write_path_keeps_the_counters_exact(make_user, platform):
    jane, bob = make_user("jane"), make_user("bob")
    _send(platform, [jane, bob], "bulk:1", channels=("in_app", "email"))
    assert _counter(jane, platform) == {"UNREAD": 2, "READ": 0, "CANCELLED": 0}
    ids = list(selectors.inbox_for(user=jane, platform=platform).values_list("id", flat=True))

    assert inbox.inbox_status_set(user=jane, platform=platform, ids=ids[:1], status="READ") == 1
    assert inbox.inbox_status_set(user=jane, platform=platform, ids=ids[:1], status="READ") == 0
    assert _counter(jane, platform) == {"UNREAD": 1, "READ": 1, "CANCELLED": 0}
    assert Notification.objects.get(pk=ids[0]).read_at is not None

    assert inbox.inbox_status_set(user=jane, platform=platform, ids=ids[:1], status="UNREAD") == 1
    assert Notification.objects.get(pk=ids[0]).read_at is None
    assert inbox.inbox_mark_all_read(user=jane, platform=platform) == 2
    assert _counter(jane, platform) == {"UNREAD": 0, "READ": 2, "CANCELLED": 0}

    # CANCELLED is terminal.
    inbox.inbox_status_set(user=jane, platform=platform, ids=ids[:1], status="CANCELLED")
    with pytest.raises(inbox.StatusChangeNotAllowed):
        inbox.inbox_status_set(user=jane, platform=platform, ids=ids[:1], status="UNREAD")
    assert _counter(jane, platform) == {"UNREAD": 0, "READ": 1, "CANCELLED": 1}

    # Another user's ids are not in this inbox.
    bob_ids = list(selectors.inbox_for(user=bob, platform=platform).values_list("id", flat=True))
    with pytest.raises(inbox.NotificationNotFound):
        inbox.inbox_status_set(user=jane, platform=platform, ids=bob_ids, status="READ")
    with pytest.raises(inbox.NotificationNotFound):
        inbox.inbox_delete(user=jane, platform=platform, notification_id=bob_ids[0])
    assert _counter(bob, platform)["UNREAD"] == 2

    # A whole inbox at once, and a delete (the row leaves the inbox).
    assert inbox.inbox_bulk_update(user=bob, platform=platform, status="READ") == 2
    inbox.inbox_delete(user=jane, platform=platform, notification_id=ids[1])
    assert _counter(jane, platform) == {"UNREAD": 0, "READ": 0, "CANCELLED": 1}
    assert _counter(bob, platform) == {"UNREAD": 0, "READ": 2, "CANCELLED": 0}

    # Raw SQL and the admin go through the same triggers.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE notifications_notification SET status = 'UNREAD' WHERE user_id = %s", [bob.pk])
    assert _counter(bob, platform) == _recount(bob, platform) == {"UNREAD": 2, "READ": 0, "CANCELLED": 0}


def test_rows_count_only_once_they_are_sent(settings, make_user, platform):
    from notifications.backends import locmem

    jane, bob = make_user("jane"), make_user("bob")
    locmem.fail_for[f"user:{bob.pk}"] = "mailbox full"
    write.deliveries_write(
        platform=platform,
        source="bulk:mail",
        channels=["email"],
        recipients=[Recipient(user_id=jane.pk), Recipient(user_id=bob.pk)],
        message=Message(title="t"),
    )
    assert _counter(jane, platform)["UNREAD"] == 0  # pending is not in the inbox
    dispatch.deliveries_dispatch(source="bulk:mail", channel="email")
    assert _counter(jane, platform)["UNREAD"] == 1
    assert _counter(bob, platform)["UNREAD"] == 0  # failed is not in the inbox either


def test_deleting_a_user_or_platform_takes_its_counters_along(make_user, platform):
    jane, bob = make_user("jane"), make_user("bob")
    _send(platform, [jane, bob], "bulk:1")
    jane.delete()
    assert not InboxCounter.objects.filter(user_id=jane.pk).exists()
    assert _counter(bob, platform)["UNREAD"] == 1
    platform.delete()
    assert InboxCounter.objects.count() == 0


def test_rebuild_repairs_counters(make_user, platform):
    jane = make_user("jane")
    _send(platform, [jane], "bulk:1")
    _send(platform, [jane], "bulk:2")
    InboxCounter.objects.filter(user=jane).update(unread=99)
    assert inbox.inbox_counters_rebuild(platform=platform) == 1
    assert _counter(jane, platform) == _recount(jane, platform) == {"UNREAD": 2, "READ": 0, "CANCELLED": 0}


def test_status_set_rejects_unknown_statuses(make_user, platform):
    with pytest.raises(ValueError):
        inbox.inbox_status_set(user=make_user("jane"), platform=platform, ids=[], status="ARCHIVED")


@pytest.mark.parametrize(
    ("accept", "status"),
    [(None, 200), ("*/*", 200), ("application/json", 200), ("application/json; indent=2", 200), ("text/csv", 406)],
)
def test_the_api_answers_json_to_whoever_accepts_it_and_406_to_others(make_user, api, accept, status):
    client = api(make_user("jane"))
    response = client.get(UNREAD, **({"HTTP_ACCEPT": accept} if accept else {}))
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    if status == 406:
        assert set(response.json()) == {"message", "error"}

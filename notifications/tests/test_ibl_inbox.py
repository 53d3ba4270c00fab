"""The org-scoped inbox of IBL §4 and §7.1: every example request, isolation, lifecycle, RBAC."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission

from notifications.backends import locmem
from notifications.models import InboxStatus, Notification
from notifications.pipeline import Message, Recipient, notification_send
from notifications.tests.factories import PlatformFactory, make_member

pytestmark = pytest.mark.django_db

API = "/api/notification/v1/"
JANE = API + "orgs/acme-learning/users/jane.doe/"
LIST = JANE + "notifications/"
COUNT = JANE + "notifications-count/"
BULK = LIST + "bulk-update/"
ORG_LIST = API + "orgs/acme-learning/notifications/"
ORG_BULK = ORG_LIST + "bulk-update/"
MARK_ALL = API + "orgs/acme-learning/mark-all-as-read"

ID_1 = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
ID_2 = uuid.UUID("7cb92a41-1e3d-4f8b-a2c6-9d0e5f7b3a12")
UPDATED = {"message": "Notification status updated successfully", "success": True}
MISSING = {"message": "Notification does not exist", "success": False}


@pytest.fixture(autouse=True)
def _push_channel_backend(settings):
    # The row channel is "push_notification"; give it the test backend under that name too.
    settings.NOTIFICATION_BACKENDS = {
        **settings.NOTIFICATION_BACKENDS,
        "push_notification": settings.NOTIFICATION_BACKENDS["push"],
    }


def deliver(platform, user, *, channel="in_app", at=None, status=None, fixed_id=None, source=None, **message):
    """One notification through the real pipeline, then dated and marked for the test."""
    source = source or f"test:{uuid.uuid4()}"
    message.setdefault("title", "A notification")
    notification_send(
        platform=platform,
        source=source,
        channels=[channel],
        recipients=[Recipient(user_id=user.id)],
        message=Message(**message),
    )
    row = Notification.objects.get(source=source, channel=channel, recipient_key=f"user:{user.id}")
    assert row.delivery_status == "sent"
    updates = {}
    if at is not None:
        updates.update(created_at=at, updated_at=at)
    if status is not None:
        updates["status"] = status
    if fixed_id is not None:
        # The documents' examples use fixed ids; the primary key is ours to choose in a test.
        Notification.objects.filter(pk=row.pk).update(id=fixed_id)
        row = Notification.objects.get(pk=fixed_id)
    if updates:
        Notification.objects.filter(pk=row.pk).update(**updates)
    row.refresh_from_db()
    return row


@pytest.fixture
def jane(make_user):
    return make_user("jane.doe", first_name="Jane")


@pytest.fixture
def client(jane, api):
    return api(jane, keyword="Token")


@pytest.fixture
def quickstart(platform, jane):
    """The two notifications of the §4 Step 1 example."""
    first = deliver(
        platform,
        jane,
        channel="email",
        fixed_id=ID_1,
        at=datetime(2026, 4, 11, 8, 30, tzinfo=UTC),
        title="New course available: Introduction to Data Science",
        body="<p>Hi Jane, you have been enrolled in Introduction to Data Science.</p>",
        context={"course_name": "Introduction to Data Science", "username": "jane.doe"},
        short_message="You have been enrolled in Introduction to Data Science.",
    )
    second = deliver(
        platform,
        jane,
        channel="email",
        fixed_id=ID_2,
        at=datetime(2026, 4, 10, 14, 15, tzinfo=UTC),
        status=InboxStatus.READ,
        title="Your certificate is ready",
        body="<p>Your certificate for Python Fundamentals is ready to download.</p>",
        context={"course_name": "Python Fundamentals", "username": "jane.doe"},
        short_message="Your Python Fundamentals certificate is ready.",
    )
    Notification.objects.filter(pk=ID_2).update(updated_at=datetime(2026, 4, 10, 14, 22, tzinfo=UTC))
    return first, second


# --- §4 Quickstart and §3's example request ------------------------------------------------


def test_step1_list_example(client, quickstart):
    r = client.get(LIST, HTTP_CONTENT_TYPE="application/json")
    assert r.status_code == 200
    assert r.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [
            {
                "id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                "username": "jane.doe",
                "title": "New course available: Introduction to Data Science",
                "body": "<p>Hi Jane, you have been enrolled in Introduction to Data Science.</p>",
                "status": "UNREAD",
                "channel": "email",
                "context": {"course_name": "Introduction to Data Science", "username": "jane.doe"},
                "short_message": "You have been enrolled in Introduction to Data Science.",
                "created_at": "2026-04-11T08:30:00Z",
                "updated_at": "2026-04-11T08:30:00Z",
            },
            {
                "id": "7cb92a41-1e3d-4f8b-a2c6-9d0e5f7b3a12",
                "username": "jane.doe",
                "title": "Your certificate is ready",
                "body": "<p>Your certificate for Python Fundamentals is ready to download.</p>",
                "status": "READ",
                "channel": "email",
                "context": {"course_name": "Python Fundamentals", "username": "jane.doe"},
                "short_message": "Your Python Fundamentals certificate is ready.",
                "created_at": "2026-04-10T14:15:00Z",
                "updated_at": "2026-04-10T14:22:00Z",
            },
        ],
    }


def test_bearer_works_too(jane, api, quickstart):
    assert api(jane, keyword="Bearer").get(LIST).json()["count"] == 2


def test_step2_unread_count_example(client, platform, jane):
    for _ in range(5):
        deliver(platform, jane)
    deliver(platform, jane, status=InboxStatus.READ)
    r = client.get(COUNT + "?status=UNREAD")
    assert (r.status_code, r.json()) == (200, {"count": 5})


def test_step3_mark_one_as_read_example(client, quickstart):
    before = Notification.objects.get(pk=ID_1)
    r = client.put(LIST, {"notification_id": str(ID_1), "status": "READ"}, format="json")
    assert (r.status_code, r.json()) == (200, UPDATED)
    after = Notification.objects.get(pk=ID_1)
    assert after.status == InboxStatus.READ
    assert after.updated_at > before.updated_at
    assert after.read_at is not None


def test_step3_mark_several_example(client, quickstart):
    Notification.objects.filter(pk=ID_2).update(status=InboxStatus.UNREAD)
    r = client.put(LIST, {"notification_id": f"{ID_1},{ID_2}", "status": "READ"}, format="json")
    assert (r.status_code, r.json()) == (200, UPDATED)
    assert set(Notification.objects.filter(pk__in=[ID_1, ID_2]).values_list("status", flat=True)) == {"READ"}


def test_step4_mark_all_as_read_example(client, platform, jane):
    for _ in range(5):
        deliver(platform, jane)
    deliver(platform, jane, status=InboxStatus.READ)
    r = client.post(MARK_ALL, {}, format="json")
    assert (r.status_code, r.json()) == (200, {"message": "Successfully marked 5 notifications as read", "count": 5})
    assert client.get(COUNT + "?status=UNREAD").json() == {"count": 0}


def test_step4_mark_a_subset_example(client, platform, jane, quickstart):
    Notification.objects.filter(pk=ID_2).update(status=InboxStatus.UNREAD)
    other = deliver(platform, jane)
    r = client.post(MARK_ALL, {"notification_ids": [str(ID_1), str(ID_2)]}, format="json")
    assert r.json() == {"message": "Successfully marked 2 notifications as read", "count": 2}
    other.refresh_from_db()
    assert other.status == InboxStatus.UNREAD


def test_mark_all_as_read_has_no_trailing_slash(client):
    assert client.post(MARK_ALL + "/", {}, format="json").status_code == 404
    assert client.post(MARK_ALL, {}, format="json").json() == {
        "message": "Successfully marked 0 notifications as read",
        "count": 0,
    }


# --- §7.1 list ---------------------------------------------------------------------------


def test_list_status_filter_example(client, quickstart):
    r = client.get(LIST + "?status=UNREAD")
    assert [n["id"] for n in r.json()["results"]] == [str(ID_1)]
    assert client.get(LIST + "?status=read").json()["results"][0]["id"] == str(ID_2)


def test_order_is_unread_first_then_newest(client, platform, jane):
    t = datetime(2026, 4, 1, tzinfo=UTC)
    old_unread = deliver(platform, jane, at=t)
    new_read = deliver(platform, jane, at=t + timedelta(days=3), status=InboxStatus.READ)
    new_unread = deliver(platform, jane, at=t + timedelta(days=2))
    old_read = deliver(platform, jane, at=t - timedelta(days=1), status=InboxStatus.READ)
    deliver(platform, jane, at=t + timedelta(days=5), status=InboxStatus.CANCELLED)
    ids = [n["id"] for n in client.get(LIST).json()["results"]]
    assert ids == [str(n.id) for n in (new_unread, old_unread, new_read, old_read)]


def test_cancelled_are_listed_only_when_asked_for(client, platform, jane):
    cancelled = deliver(platform, jane, status=InboxStatus.CANCELLED)
    deliver(platform, jane)
    assert client.get(LIST).json()["count"] == 1
    r = client.get(LIST + "?status=CANCELLED")
    assert [n["id"] for n in r.json()["results"]] == [str(cancelled.id)]
    assert client.get(COUNT).json() == {"count": 1}
    assert client.get(COUNT + "?status=CANCELLED").json() == {"count": 1}


def test_pages_carry_page_numbers(client, platform, jane):
    t = datetime(2026, 4, 1, tzinfo=UTC)
    for i in range(25):
        deliver(platform, jane, at=t + timedelta(minutes=i))
    first = client.get(LIST).json()
    assert (first["count"], first["next"], first["previous"], len(first["results"])) == (25, 2, None, 20)
    second = client.get(LIST + "?page=2").json()
    assert (second["next"], second["previous"], len(second["results"])) == (None, 1, 5)
    seen = [n["id"] for n in first["results"] + second["results"]]
    assert len(set(seen)) == 25
    small = client.get(LIST + "?page=2&page_size=10").json()
    assert (small["next"], small["previous"], len(small["results"])) == (3, 1, 10)
    r = client.get(LIST + "?page=3")
    assert (r.status_code, r.json()) == (404, {"detail": "Invalid page."})


def test_rows_written_in_the_same_instant_page_stably(client, platform, jane, make_user):
    # One bulk send writes many rows with one created_at; pages must neither repeat nor skip.
    notification_send(
        platform=platform,
        source="bulk:same-instant",
        channels=["in_app", "email", "sms"],
        recipients=[Recipient(user_id=jane.id)],
        message=Message(title="Same instant"),
    )
    assert Notification.objects.filter(source="bulk:same-instant").values("created_at").distinct().count() == 1
    pages = [client.get(LIST + f"?page_size=1&page={p}").json()["results"][0]["id"] for p in (1, 2, 3)]
    assert len(set(pages)) == 3


def test_channel_filters(client, platform, jane):
    email = deliver(platform, jane, channel="email")
    push = deliver(platform, jane, channel="push_notification")
    in_app = deliver(platform, jane, channel="in_app")
    assert [n["id"] for n in client.get(LIST + "?channel=email").json()["results"]] == [str(email.id)]
    assert [n["id"] for n in client.get(LIST + "?channel=push_notification").json()["results"]] == [str(push.id)]
    ids = {n["id"] for n in client.get(LIST + "?exclude_channel=email").json()["results"]}
    assert ids == {str(push.id), str(in_app.id)}
    assert client.get(COUNT + "?channel=email").json() == {"count": 1}


def test_date_filters(client, platform, jane):
    d9 = deliver(platform, jane, at=datetime(2026, 4, 9, 23, 59, tzinfo=UTC))
    d10 = deliver(platform, jane, at=datetime(2026, 4, 10, 12, 0, tzinfo=UTC))
    d11 = deliver(platform, jane, at=datetime(2026, 4, 11, 0, 0, tzinfo=UTC))

    def ids(query):
        r = client.get(LIST + query)
        assert r.status_code == 200, r.content
        return {n["id"] for n in r.json()["results"]}

    assert ids("?start_date=2026-04-10") == {str(d10.id), str(d11.id)}
    assert ids("?end_date=2026-04-10") == {str(d9.id), str(d10.id)}
    assert ids("?start_date=2026-04-10&end_date=2026-04-10") == {str(d10.id)}
    assert ids("?start_date=2026-04-10T12:00:00Z") == {str(d10.id), str(d11.id)}
    assert ids("?end_date=2026-04-10T12:00:00Z") == {str(d9.id), str(d10.id)}
    assert ids("?start_date=2026-04-10T14:00:00%2B02:00&end_date=2026-04-10T12:00:00") == {str(d10.id)}
    # A "+" left unencoded arrives as a space; it still means the offset.
    assert ids("?start_date=2026-04-10T14:00:00+02:00&end_date=2026-04-10 12:00:00") == {str(d10.id)}


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("status=ARCHIVED", "status"),
        ("channel=fax", "channel"),
        ("exclude_channel=pigeon", "exclude_channel"),
        ("start_date=yesterday", "start_date"),
        ("end_date=2026-13-45", "end_date"),
        ("start_date=2026-04-11&end_date=2026-04-10", "end_date"),
        ("page=0", "page"),
        ("page=two", "page"),
        ("page_size=1000", "page_size"),
    ],
)
def test_bad_filters_are_400s_naming_the_parameter(client, query, param):
    r = client.get(LIST + "?" + query)
    assert r.status_code == 400
    assert list(r.json()) == [param]
    assert client.get(ORG_LIST + "?" + query).status_code == 400


def test_bad_count_filters(client):
    r = client.get(COUNT + "?status=NOPE")
    assert r.status_code == 400 and "status" in r.json()
    assert client.get(COUNT + "?channel=fax").status_code == 400


def test_only_sent_rows_are_in_the_inbox(client, platform, jane):
    locmem.fail_for[f"user:{jane.id}"] = "provider said no"
    notification_send(
        platform=platform,
        source="failed-one",
        channels=["email"],
        recipients=[Recipient(user_id=jane.id)],
        message=Message(title="never arrived"),
    )
    assert Notification.objects.get(source="failed-one").delivery_status == "failed"
    assert client.get(LIST).json()["count"] == 0


# --- §7.1 PUT and the lifecycle ------------------------------------------------------------


def test_put_example_from_the_reference(client, platform, jane):
    a = deliver(platform, jane, fixed_id=ID_1)
    b = deliver(platform, jane, fixed_id=uuid.UUID("7cb93e21-1234-4abc-9876-def012345678"))
    r = client.put(
        LIST,
        {
            "notification_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6,7cb93e21-1234-4abc-9876-def012345678",
            "status": "READ",
        },
        format="json",
    )
    assert (r.status_code, r.json()) == (200, UPDATED)
    for n in (a, b):
        n.refresh_from_db()
        assert n.status == InboxStatus.READ


def test_lifecycle(client, platform, jane):
    n = deliver(platform, jane)

    def put(status):
        return client.put(LIST, {"notification_id": str(n.id), "status": status}, format="json")

    assert put("READ").status_code == 200
    n.refresh_from_db()
    assert (n.status, n.read_at is not None) == ("READ", True)
    assert put("UNREAD").status_code == 200
    n.refresh_from_db()
    assert (n.status, n.read_at) == ("UNREAD", None)
    assert put("CANCELLED").status_code == 200
    n.refresh_from_db()
    stamp = n.updated_at
    assert put("CANCELLED").status_code == 200  # already there: nothing to do
    for status in ("READ", "UNREAD"):
        r = put(status)
        assert r.status_code == 400
        message = f"Notification {n.id} cannot change from CANCELLED to {status}: cancelled notifications are final"
        assert r.json() == {"message": message, "success": False, "notification_id": [message]}
    n.refresh_from_db()
    assert (n.status, n.updated_at) == ("CANCELLED", stamp)


def test_read_can_be_cancelled(client, platform, jane):
    n = deliver(platform, jane, status=InboxStatus.READ)
    assert client.put(LIST, {"notification_id": str(n.id), "status": "CANCELLED"}, format="json").status_code == 200
    n.refresh_from_db()
    assert n.status == InboxStatus.CANCELLED


def test_a_refused_change_changes_nothing(client, platform, jane):
    fine = deliver(platform, jane)
    cancelled = deliver(platform, jane, status=InboxStatus.CANCELLED)
    r = client.put(LIST, {"notification_id": f"{fine.id},{cancelled.id}", "status": "READ"}, format="json")
    assert r.status_code == 400
    assert str(cancelled.id) in r.json()["message"] and str(fine.id) not in r.json()["message"]
    fine.refresh_from_db()
    assert fine.status == InboxStatus.UNREAD


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"status": "READ"}, "notification_id"),
        ({"notification_id": str(ID_1)}, "status"),
        ({"notification_id": "not-a-uuid", "status": "READ"}, "notification_id"),
        ({"notification_id": " , ", "status": "READ"}, "notification_id"),
        ({"notification_id": str(ID_1), "status": "ARCHIVED"}, "status"),
    ],
)
def test_put_validation(client, payload, field):
    r = client.put(LIST, payload, format="json")
    assert r.status_code == 400
    data = r.json()
    assert field in data and data["success"] is False and data["message"].startswith(field)


def test_put_cannot_touch_another_users_or_another_orgs_notifications(client, platform, jane, make_user):
    mine = deliver(platform, jane)
    theirs = deliver(platform, make_user("john.doe"))
    other_org = PlatformFactory(key="other-org")
    make_member(platform=other_org, username="jane.doe")
    mine_elsewhere = deliver(other_org, jane)
    for foreign in (theirs, mine_elsewhere):
        r = client.put(LIST, {"notification_id": f"{mine.id},{foreign.id}", "status": "READ"}, format="json")
        assert (r.status_code, r.json()) == (404, MISSING)
        r = client.put(ORG_LIST, {"notification_id": str(foreign.id), "status": "CANCELLED"}, format="json")
        assert (r.status_code, r.json()) == (404, MISSING)
    for n in (mine, theirs, mine_elsewhere):
        n.refresh_from_db()
        assert n.status == InboxStatus.UNREAD
    # Unknown ids answer exactly like foreign ones.
    r = client.put(LIST, {"notification_id": str(uuid.uuid4()), "status": "READ"}, format="json")
    assert (r.status_code, r.json()) == (404, MISSING)


# --- §7.1 PATCH bulk-update --------------------------------------------------------------


def test_bulk_update(client, platform, jane, make_user):
    a = deliver(platform, jane)
    b = deliver(platform, jane, status=InboxStatus.READ)
    c = deliver(platform, jane, status=InboxStatus.CANCELLED)
    theirs = deliver(platform, make_user("john.doe"))
    r = client.patch(BULK, {"status": "READ"}, format="json")
    assert (r.status_code, r.json()) == (200, {"message": "Notification status updated successfully"})
    statuses = {n.pk: n.status for n in Notification.objects.filter(pk__in=[a.pk, b.pk, c.pk, theirs.pk])}
    assert statuses == {a.pk: "READ", b.pk: "READ", c.pk: "CANCELLED", theirs.pk: "UNREAD"}
    assert client.patch(BULK, {"status": "CANCELLED"}, format="json").status_code == 200
    assert set(Notification.objects.filter(pk__in=[a.pk, b.pk, c.pk]).values_list("status", flat=True)) == {"CANCELLED"}


def test_bulk_update_of_an_empty_inbox(client):
    r = client.patch(BULK, {"status": "READ"}, format="json")
    assert (r.status_code, r.json()) == (400, {"error": "Notification does not exist"})
    r = client.patch(ORG_BULK, {"status": "READ"}, format="json")
    assert (r.status_code, r.json()) == (400, {"error": "Notification does not exist"})


def test_bulk_update_validation(client, platform, jane):
    deliver(platform, jane)
    r = client.patch(BULK, {"status": "DONE"}, format="json")
    assert r.status_code == 400
    assert "status" in r.json() and r.json()["error"].startswith("status")


# --- §7.1 DELETE -------------------------------------------------------------------------


def test_delete(client, platform, jane, api):
    n = deliver(platform, jane, source="course:42", channel="email", title="Secret title", body="Secret body")
    r = client.delete(LIST + f"{n.id}/")
    assert (r.status_code, r.json()) == (200, {"message": "Notification deleted successfully"})
    assert client.get(LIST).json()["count"] == 0
    assert api(jane).get("/api/v1/notifications").json()["data"]["total_count"] == 0
    # The delivery receipt stays, without its content, so a retried send does not deliver again.
    row = Notification.objects.get(pk=n.pk)
    assert (row.user_id, row.title, row.body, row.context, row.address) == (None, "", "", {}, "")
    sent_before = len(locmem.outbox["email"])
    notification_send(
        platform=platform,
        source="course:42",
        channels=["email"],
        recipients=[Recipient(user_id=jane.id)],
        message=Message(title="Secret title"),
    )
    assert len(locmem.outbox["email"]) == sent_before
    assert client.get(LIST).json()["count"] == 0
    r = client.delete(LIST + f"{n.id}/")
    assert (r.status_code, r.json()) == (404, {"message": "Notification does not exist"})


def test_delete_someone_elses_or_unknown(client, platform, make_user):
    theirs = deliver(platform, make_user("john.doe"))
    for target in (str(theirs.id), str(uuid.uuid4()), "not-a-uuid"):
        r = client.delete(LIST + f"{target}/")
        assert (r.status_code, r.json()) == (404, {"message": "Notification does not exist"})
    assert Notification.objects.filter(pk=theirs.pk, user__isnull=False).exists()


# --- org-level endpoints -----------------------------------------------------------------


def test_org_paths_act_on_the_callers_own_inbox(platform, jane, make_user, api):
    admin = make_user("admin.user", role="ADMIN", admin=True)
    janes = deliver(platform, jane)
    admins = deliver(platform, admin)
    admin_client = api(admin)
    assert [n["id"] for n in admin_client.get(ORG_LIST).json()["results"]] == [str(admins.id)]
    assert [n["id"] for n in api(jane).get(ORG_LIST).json()["results"]] == [str(janes.id)]
    r = admin_client.put(ORG_LIST, {"notification_id": str(admins.id), "status": "READ"}, format="json")
    assert (r.status_code, r.json()) == (200, UPDATED)
    r = admin_client.put(ORG_LIST, {"notification_id": str(janes.id), "status": "READ"}, format="json")
    assert r.status_code == 404
    assert admin_client.patch(ORG_BULK, {"status": "CANCELLED"}, format="json").status_code == 200
    janes.refresh_from_db()
    admins.refresh_from_db()
    assert (janes.status, admins.status) == ("UNREAD", "CANCELLED")
    assert admin_client.post(MARK_ALL, {"notification_ids": [str(janes.id)]}, format="json").json()["count"] == 0


def test_org_list_filters_and_pages(client, platform, jane):
    deliver(platform, jane, channel="email")
    deliver(platform, jane, channel="in_app")
    r = client.get(ORG_LIST + "?channel=email&page_size=1")
    assert (r.json()["count"], r.json()["next"]) == (1, None)


# --- who may do what ---------------------------------------------------------------------


def test_other_users_get_404(platform, jane, make_user, api):
    deliver(platform, jane)
    john = api(make_user("john.doe"))
    for method, url in [
        ("get", LIST),
        ("get", COUNT),
        ("put", LIST),
        ("patch", BULK),
        ("delete", LIST + f"{uuid.uuid4()}/"),
    ]:
        r = getattr(john, method)(url, {}, format="json") if method != "get" else john.get(url)
        assert r.status_code == 404, (method, url)


def test_platform_admin_acts_for_members(platform, jane, make_user, api):
    n = deliver(platform, jane)
    admin = api(make_user("admin.user", role="ADMIN", admin=True))
    assert admin.get(LIST).json()["count"] == 1
    assert admin.get(COUNT).json() == {"count": 1}
    assert admin.put(LIST, {"notification_id": str(n.id), "status": "READ"}, format="json").status_code == 200
    assert admin.patch(BULK, {"status": "UNREAD"}, format="json").status_code == 200
    assert admin.delete(LIST + f"{n.id}/").status_code == 200
    # Not a member here: the same 404 as a user who does not exist.
    make_member(platform=PlatformFactory(key="other-org"), username="stranger")
    assert admin.get(API + "orgs/acme-learning/users/stranger/notifications/").status_code == 404
    assert admin.get(API + "orgs/acme-learning/users/nobody/notifications/").status_code == 404


def test_admins_of_another_org_and_strangers_get_404(platform, jane, api):
    deliver(platform, jane)
    other_admin = make_member(platform=PlatformFactory(key="other-org"), username="other.admin", admin=True)
    r = api(other_admin).get(LIST)
    assert (r.status_code, r.json()) == (404, {"detail": "Not found."})
    assert api(other_admin).get(ORG_LIST).status_code == 404
    assert api(other_admin).post(MARK_ALL, {}, format="json").status_code == 404
    assert api(jane).get(API + "orgs/no-such-org/users/jane.doe/notifications/").status_code == 404


def test_anonymous_is_401(api):
    assert api().get(LIST).status_code == 401
    assert api().post(MARK_ALL, {}, format="json").status_code == 401


def test_inactive_membership_loses_access(platform, jane, client):
    jane.memberships.update(is_active=False)
    assert client.get(LIST).status_code == 404


def test_org_isolation_of_the_same_user(client, platform, jane):
    other = PlatformFactory(key="other-org")
    make_member(platform=other, username="jane.doe")
    here = deliver(platform, jane)
    there = deliver(other, jane)
    assert [n["id"] for n in client.get(LIST).json()["results"]] == [str(here.id)]
    r = client.get(API + "orgs/other-org/users/jane.doe/notifications/")
    assert [n["id"] for n in r.json()["results"]] == [str(there.id)]
    client.post(MARK_ALL, {}, format="json")
    there.refresh_from_db()
    assert there.status == InboxStatus.UNREAD


# --- RBAC ---------------------------------------------------------------------------------


def grant(user, *codenames):
    user.memberships.get().permissions.add(
        *Permission.objects.filter(content_type__app_label="notifications", codename__in=codenames)
    )


def test_rbac_requires_the_resource_grants(platform, jane, api):
    n = deliver(platform, jane)
    platform.rbac_enabled = True
    platform.save()
    client = api(jane)
    r = client.get(LIST)
    assert (r.status_code, r.json()) == (403, {"detail": "Missing permission: Ibl.Notifications/Notification/list"})
    assert client.get(COUNT).status_code == 403
    assert client.get(ORG_LIST).status_code == 403
    grant(jane, "ibl_notification_list")
    client = api(jane)
    assert client.get(LIST).status_code == 200
    assert client.get(ORG_LIST).status_code == 200
    r = client.put(LIST, {"notification_id": str(n.id), "status": "READ"}, format="json")
    assert (r.status_code, r.json()) == (403, {"detail": "Missing permission: Ibl.Notifications/Notification/write"})
    assert client.patch(BULK, {"status": "READ"}, format="json").status_code == 403
    assert client.post(MARK_ALL, {}, format="json").status_code == 403
    grant(jane, "ibl_notification_write")
    client = api(jane)
    assert client.put(LIST, {"notification_id": str(n.id), "status": "READ"}, format="json").status_code == 200
    assert client.post(MARK_ALL, {}, format="json").status_code == 200
    r = client.delete(LIST + f"{n.id}/")
    assert (r.status_code, r.json()) == (403, {"detail": "Missing permission: Ibl.Notifications/Notification/delete"})
    grant(jane, "ibl_notification_delete")
    assert api(jane).delete(LIST + f"{n.id}/").status_code == 200


def test_rbac_off_needs_no_grants(platform, jane, client):
    deliver(platform, jane)
    assert not jane.has_perm("notifications.ibl_notification_list")
    assert client.get(LIST).status_code == 200


def test_admin_role_holds_the_grants(platform, jane, make_user, api):
    platform.rbac_enabled = True
    platform.save()
    deliver(platform, jane)
    admin = api(make_user("admin.user", role="ADMIN", admin=True))
    assert admin.get(LIST).json()["count"] == 1


def test_rbac_never_reveals_other_inboxes(platform, jane, make_user, api):
    # A 404 for someone else's inbox comes before the RBAC 403.
    platform.rbac_enabled = True
    platform.save()
    assert api(make_user("john.doe")).get(LIST).status_code == 404


# --- one inbox, two surfaces ------------------------------------------------------------


def test_the_same_rows_on_both_surfaces(platform, jane, api):
    notification_send(
        platform=platform,
        source="bulk:cross-surface",
        channels=["in_app"],
        recipients=[Recipient(user_id=jane.id)],
        message=Message(title="Hello", body="From the bulk surface"),
    )
    client = api(jane)
    v1 = client.get("/api/v1/notifications").json()["data"]["notifications"]
    ibl = client.get(LIST).json()["results"]
    assert [n["id"] for n in v1] == [n["id"] for n in ibl]
    assert v1[0]["is_read"] is False
    client.put(LIST, {"notification_id": ibl[0]["id"], "status": "READ"}, format="json")
    assert client.get("/api/v1/notifications").json()["data"]["notifications"][0]["is_read"] is True
    assert client.get("/api/v1/notifications/unread").json()["data"]["unread"] == 0

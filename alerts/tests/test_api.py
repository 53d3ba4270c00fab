"""The `/alerts` surface over HTTP: every example of the document, then the edges."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert

pytestmark = pytest.mark.django_db

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the document's examples ------------------------------------------------------


def test_get_alerts_example(client, alice, platform):
    """GET /alerts answers the document's example response for the same two alerts."""
    low_stock = Alert.objects.create(
        platform=platform,
        user=alice,
        title="Low Stock Alert",
        message="Item 'Laptop Dell XPS 15' is running low on stock (2 remaining)",
        type="warning",
        created_at=_at("2026-03-07T10:30:00Z"),
    )
    audit = Alert.objects.create(
        platform=platform,
        user=alice,
        title="Inventory Audit Scheduled",
        message="Quarterly inventory audit for Warehouse A",
        type="info",
        created_at=_at("2026-03-05T08:00:00Z"),
        is_read=True,
        is_event=True,
        scheduled_at=_at("2026-03-15T09:00:00Z"),
        notify_at=_at("2026-03-14T09:00:00Z"),
    )
    response = client.get("/alerts")
    assert response.status_code == 200
    assert response.json()["data"] == [
        {
            "id": low_stock.pk,
            "title": "Low Stock Alert",
            "message": "Item 'Laptop Dell XPS 15' is running low on stock (2 remaining)",
            "type": "warning",
            "createdAt": "2026-03-07T10:30:00Z",
            "isRead": False,
            "isEvent": False,
            "scheduledAt": None,
            "notifyAt": None,
        },
        {
            "id": audit.pk,
            "title": "Inventory Audit Scheduled",
            "message": "Quarterly inventory audit for Warehouse A",
            "type": "info",
            "createdAt": "2026-03-05T08:00:00Z",
            "isRead": True,
            "isEvent": True,
            "scheduledAt": "2026-03-15T09:00:00Z",
            "notifyAt": "2026-03-14T09:00:00Z",
        },
    ]
    assert response.json()["meta"] == {"page": 1, "limit": 20, "total": 2, "totalPages": 1, "unreadCount": 1}


def test_create_simple_alert_example(client):
    response = client.post(
        "/alerts",
        {"title": "Low Stock Alert", "message": 'Item "Laptop Dell XPS 15" is running low on stock', "type": "warning"},
        format="json",
    )
    assert response.status_code == 201
    data = response.json()["data"]
    created_at = data.pop("createdAt")
    assert isinstance(data.pop("id"), int)
    assert data == {
        "title": "Low Stock Alert",
        "message": 'Item "Laptop Dell XPS 15" is running low on stock',
        "type": "warning",
        "isRead": False,
        "isEvent": False,
        "scheduledAt": None,
        "notifyAt": None,
    }
    assert ISO_Z.match(created_at)
    assert abs(_at(created_at) - timezone.now()) < timedelta(seconds=5)


def test_create_scheduled_event_example(client):
    response = client.post(
        "/alerts",
        {
            "title": "Quarterly Inventory Audit",
            "message": "Complete inventory count for all warehouses",
            "type": "info",
            "isEvent": True,
            "scheduledAt": "2026-06-15T09:00:00Z",
            "notifyAt": "2026-06-14T09:00:00Z",
        },
        format="json",
    )
    assert response.status_code == 201
    data = response.json()["data"]
    alert = Alert.objects.get()
    assert data == {
        "id": alert.pk,
        "title": "Quarterly Inventory Audit",
        "message": "Complete inventory count for all warehouses",
        "type": "info",
        "createdAt": data["createdAt"],
        "isRead": False,
        "isEvent": True,
        "scheduledAt": "2026-06-15T09:00:00Z",
        "notifyAt": "2026-06-14T09:00:00Z",
    }
    assert ISO_Z.match(data["createdAt"])
    assert alert.due_at == _at("2026-06-14T09:00:00Z")


def test_update_example(client, create):
    alert = create(
        title="Quarterly Inventory Audit",
        message="Complete inventory count for all warehouses",
        type="info",
        isEvent=True,
        scheduledAt="2026-06-15T09:00:00Z",
        notifyAt="2026-06-14T09:00:00Z",
    )
    response = client.put(
        f"/alerts/{alert['id']}",
        {"title": "Quarterly Inventory Audit - Rescheduled", "scheduledAt": "2026-06-20T09:00:00Z"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["data"] == {
        **alert,
        "title": "Quarterly Inventory Audit - Rescheduled",
        "scheduledAt": "2026-06-20T09:00:00Z",
    }
    row = Alert.objects.get(pk=alert["id"])
    assert (row.title, row.scheduled_at) == ("Quarterly Inventory Audit - Rescheduled", _at("2026-06-20T09:00:00Z"))


def test_delete_example(client, create):
    alert = create()
    response = client.delete(f"/alerts/{alert['id']}")
    assert response.status_code == 200
    assert response.json() == {"data": {"id": alert["id"], "deleted": True}, "message": "Alert deleted successfully"}
    # Gone from the API, kept in the database with its deletion time.
    assert client.get("/alerts").json()["data"] == []
    assert Alert.objects.get(pk=alert["id"]).deleted_at is not None
    again = client.delete(f"/alerts/{alert['id']}")
    assert (again.status_code, again.json()) == (404, {"error": {"code": "not_found", "message": "Alert not found"}})


def test_delete_documented_errors(api, client):
    response = client.delete("/alerts/999999")
    assert (response.status_code, response.json()) == (
        404,
        {"error": {"code": "not_found", "message": "Alert not found"}},
    )
    response = api().delete("/alerts/3")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_mark_read_example(client, create):
    alert = create()
    before = timezone.now()
    response = client.patch(f"/alerts/{alert['id']}/read")
    assert response.status_code == 200
    assert response.json()["data"] == {**alert, "isRead": True}
    row = Alert.objects.get(pk=alert["id"])
    assert row.is_read and row.read_at >= before
    # Reading again keeps the first read time.
    first = row.read_at
    assert client.patch(f"/alerts/{alert['id']}/read").status_code == 200
    assert Alert.objects.get(pk=alert["id"]).read_at == first


# --- beyond the examples: read-all, pagination, filters -------------------------------


def test_read_all_returns_how_many(client, create, bob, api):
    for _ in range(3):
        create()
    read = create()
    client.patch(f"/alerts/{read['id']}/read")
    api(bob).post("/alerts", {"title": "Bob's", "message": "not alice's"}, format="json")
    response = client.patch("/alerts/read-all")
    assert (response.status_code, response.json()) == (200, {"data": {"updated": 3}})
    assert client.patch("/alerts/read-all").json() == {"data": {"updated": 0}}
    assert Alert.objects.filter(user=bob, is_read=False).count() == 1
    assert all(a.read_at for a in Alert.objects.filter(user__username="alice"))


def test_pagination(client, create):
    ids = [create(title=f"Alert {i}")["id"] for i in range(25)]
    first = client.get("/alerts").json()
    assert [a["id"] for a in first["data"]] == ids[::-1][:20]
    assert first["meta"] == {"page": 1, "limit": 20, "total": 25, "totalPages": 2, "unreadCount": 25}
    second = client.get("/alerts", {"page": 2}).json()
    assert [a["id"] for a in second["data"]] == ids[::-1][20:]
    small = client.get("/alerts", {"page": 3, "limit": 10}).json()
    assert [a["id"] for a in small["data"]] == ids[::-1][20:]
    assert small["meta"]["totalPages"] == 3
    beyond = client.get("/alerts", {"page": 9}).json()
    assert beyond["data"] == [] and beyond["meta"]["total"] == 25


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"isRead": "maybe"}, "isRead"),
        ({"isEvent": "sometimes"}, "isEvent"),
        ({"type": "urgent"}, "type"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-06-15T09:00:00"}, "to"),
        ({"from": "2026-06-20T00:00:00Z", "to": "2026-06-10T00:00:00Z"}, "to"),
        ({"archived": "perhaps"}, "archived"),
        ({"ordering": "title"}, "ordering"),
    ],
)
def test_list_query_validation(client, params, field):
    response = client.get("/alerts", params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]
    assert error["message"].startswith(f"{field}: ")


def test_filters(client, create):
    now = timezone.now()
    info = create(type="info")
    warning = create(type="warning")
    critical = create(type="critical")
    soon = create(isEvent=True, scheduledAt=(now + timedelta(days=2)).isoformat())
    later = create(isEvent=True, scheduledAt=(now + timedelta(days=10)).isoformat())
    past = create(isEvent=True, scheduledAt=(now - timedelta(days=1)).isoformat())
    client.patch(f"/alerts/{info['id']}/read")

    def ids(**params):
        response = client.get("/alerts", params)
        assert response.status_code == 200, response.json()
        return [a["id"] for a in response.json()["data"]]

    assert ids(isRead="true") == [info["id"]]
    assert info["id"] not in ids(isRead="false")
    assert ids(type="critical") == [critical["id"]]
    assert ids(type="warning,critical") == [critical["id"], warning["id"]]
    assert ids(isEvent="false") == [critical["id"], warning["id"], info["id"]]
    # The document's "upcoming events (next 7 days)" in one call.
    window = {"from": now.isoformat(), "to": (now + timedelta(days=7)).isoformat()}
    assert ids(isEvent="true", **window) == [soon["id"]]
    assert ids(isEvent="true", ordering="scheduledAt") == [past["id"], soon["id"], later["id"]]
    assert ids(isEvent="true", ordering="-scheduledAt") == [later["id"], soon["id"], past["id"]]
    assert ids(**{"from": now.isoformat()}) == [later["id"], soon["id"]]


def test_archived_listing(client, create, alice):
    kept, old_read, old_unread = create(), create(), create()
    month_ago = timezone.now() - timedelta(days=45)
    Alert.objects.filter(pk__in=[old_read["id"], old_unread["id"]]).update(created_at=month_ago)
    client.patch(f"/alerts/{old_read['id']}/read")
    from alerts.tasks import archive_read_alerts

    assert archive_read_alerts.delay() is not None
    assert [a["id"] for a in client.get("/alerts").json()["data"]] == [kept["id"], old_unread["id"]]
    archived = client.get("/alerts", {"archived": "true"}).json()
    assert [a["id"] for a in archived["data"]] == [old_read["id"]]
    assert archived["meta"]["total"] == 1
    # Still reachable by id; marking it unread brings it back to the default list.
    response = client.put(f"/alerts/{old_read['id']}", {"isRead": False}, format="json")
    assert response.status_code == 200 and response.json()["data"]["isRead"] is False
    assert old_read["id"] in [a["id"] for a in client.get("/alerts").json()["data"]]
    assert Alert.objects.get(pk=old_read["id"]).read_at is None


# --- create and update validation ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"message": "no title"}, "title", "This field is required."),
        ({"title": "no message"}, "message", "This field is required."),
        ({"title": "", "message": "x"}, "title", "This field may not be blank."),
        ({"title": "x", "message": "x", "type": "urgent"}, "type", '"urgent" is not a valid choice.'),
        ({"title": "x" * 256, "message": "x"}, "title", "Ensure this field has no more than 255 characters."),
        (
            {"title": "x", "message": "x", "notifyAt": "2026-06-14T09:00:00"},
            "notifyAt",
            "Timestamp must include a timezone, e.g. 2026-06-15T09:00:00Z or 2026-06-15T12:00:00+03:00.",
        ),
        (
            {"title": "x", "message": "x", "scheduledAt": "next tuesday"},
            "scheduledAt",
            "Enter an ISO 8601 timestamp, e.g. 2026-06-15T09:00:00Z.",
        ),
        (
            {"title": "x", "message": "x", "scheduledAt": 1781514000},
            "scheduledAt",
            "Enter an ISO 8601 timestamp, e.g. 2026-06-15T09:00:00Z.",
        ),
        ({"title": "x", "message": "x", "isEvent": True}, "scheduledAt", "An event needs scheduledAt."),
        (
            {
                "title": "x",
                "message": "x",
                "isEvent": True,
                "scheduledAt": "2026-06-15T09:00:00Z",
                "notifyAt": "2026-06-15T09:00:01Z",
            },
            "notifyAt",
            "notifyAt must not be after scheduledAt.",
        ),
        ({"title": "x", "message": "x", "isRead": "often"}, "isRead", "Must be a valid boolean."),
        ({"title": "x", "message": "x", "userId": "me"}, "userId", "A valid integer is required."),
    ],
)
def test_create_validation(client, body, field, text):
    response = client.post("/alerts", body, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "invalid", "message": f"{field}: {text}", "fields": {field: [text]}},
    }
    assert not Alert.objects.exists()


def test_create_rejects_non_json_garbage(client):
    response = client.post("/alerts", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_offsets_are_converted_to_utc(client):
    response = client.post(
        "/alerts",
        {
            "title": "Audit",
            "message": "Addis Ababa time",
            "isEvent": True,
            "scheduledAt": "2026-06-15T12:00:00+03:00",
            "notifyAt": "2026-06-15T11:00:00.250+03:00",
        },
        format="json",
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert (data["scheduledAt"], data["notifyAt"]) == ("2026-06-15T09:00:00Z", "2026-06-15T08:00:00.250Z")


def test_update_validation_looks_at_the_merged_alert(client, create):
    event = create(isEvent=True, scheduledAt="2026-06-15T09:00:00Z", notifyAt="2026-06-14T09:00:00Z")
    # notifyAt alone, after the stored scheduledAt.
    response = client.put(f"/alerts/{event['id']}", {"notifyAt": "2026-06-16T09:00:00Z"}, format="json")
    assert (response.status_code, response.json()["error"]["fields"]) == (
        400,
        {"notifyAt": ["notifyAt must not be after scheduledAt."]},
    )
    # Clearing an event's scheduledAt.
    response = client.put(f"/alerts/{event['id']}", {"scheduledAt": None}, format="json")
    assert response.json()["error"]["fields"] == {"scheduledAt": ["An event needs scheduledAt."]}
    response = client.put(f"/alerts/{event['id']}", {"title": ""}, format="json")
    assert response.json()["error"]["fields"] == {"title": ["This field may not be blank."]}
    response = client.put(f"/alerts/{event['id']}", {"scheduledAt": "2026-06-15T09:00:00"}, format="json")
    assert response.status_code == 400 and "timezone" in response.json()["error"]["message"]
    # Nothing was half-written.
    assert client.get(f"/alerts/{event['id']}").json()["data"] == event
    # Turning it into a plain alert needs no scheduledAt; PATCH works like PUT.
    response = client.patch(f"/alerts/{event['id']}", {"isEvent": False, "type": "critical"}, format="json")
    assert response.status_code == 200
    assert (response.json()["data"]["isEvent"], response.json()["data"]["type"]) == (False, "critical")


def test_put_is_read_records_read_time(client, create):
    alert = create()
    assert client.put(f"/alerts/{alert['id']}", {"isRead": True}, format="json").json()["data"]["isRead"] is True
    assert Alert.objects.get(pk=alert["id"]).read_at is not None


def test_created_read_alert_keeps_read_time(client):
    response = client.post("/alerts", {"title": "FYI", "message": "seen", "isRead": True}, format="json")
    assert response.json()["data"]["isRead"] is True
    assert Alert.objects.get().read_at is not None


def test_unknown_fields_and_read_only_fields_are_ignored(client, create):
    alert = create(id=12345, createdAt="2020-01-01T00:00:00Z", colour="red")
    assert alert["id"] != 12345 and not alert["createdAt"].startswith("2020")


def test_get_one(client, create):
    alert = create()
    response = client.get(f"/alerts/{alert['id']}")
    assert (response.status_code, response.json()) == (200, {"data": alert})


def test_unknown_method_and_path(client):
    assert client.post("/alerts/read-all").status_code == 405
    response = client.get("/alerts/abc")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    # APPEND_SLASH is off: the slashed path is not the list.
    assert client.get("/alerts/").status_code == 404


# --- authentication, users and platforms ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/alerts"),
        ("post", "/alerts"),
        ("get", "/alerts/1"),
        ("put", "/alerts/1"),
        ("patch", "/alerts/1"),
        ("delete", "/alerts/1"),
        ("patch", "/alerts/1/read"),
        ("patch", "/alerts/read-all"),
    ],
)
def test_every_endpoint_needs_a_token(api, method, path):
    response = getattr(api(), method)(path, {}, format="json")
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "not_authenticated", "message": "Authentication credentials were not provided."}
    }
    bad = api()
    bad.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert getattr(bad, method)(path, {}, format="json").status_code == 401


def test_token_keyword_works_too(api, alice):
    assert api(alice, keyword="Token").get("/alerts").status_code == 200


def _every_verb(client, alert_id):
    return [
        client.get(f"/alerts/{alert_id}"),
        client.put(f"/alerts/{alert_id}", {"title": "mine now"}, format="json"),
        client.patch(f"/alerts/{alert_id}", {"title": "mine now"}, format="json"),
        client.patch(f"/alerts/{alert_id}/read"),
        client.delete(f"/alerts/{alert_id}"),
    ]


def test_another_users_alert_is_404_on_every_verb(api, create, bob):
    alert = create()
    bob_client = api(bob)
    for response in _every_verb(bob_client, alert["id"]):
        assert (response.status_code, response.json()) == (
            404,
            {"error": {"code": "not_found", "message": "Alert not found"}},
        )
    assert bob_client.get("/alerts").json()["data"] == []
    assert bob_client.patch("/alerts/read-all").json() == {"data": {"updated": 0}}
    row = Alert.objects.get(pk=alert["id"])
    assert (row.title, row.is_read, row.deleted_at) == ("Low Stock Alert", False, None)


def test_deleted_alert_is_404_on_every_verb(client, create):
    alert = create()
    client.delete(f"/alerts/{alert['id']}")
    for response in _every_verb(client, alert["id"]):
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Alert not found"
    assert client.get("/alerts", {"archived": "true"}).json()["data"] == []
    assert client.patch("/alerts/read-all").json() == {"data": {"updated": 0}}


def test_platforms_are_isolated(api, make_user, other_platform, platform):
    """A user on two platforms sees each platform's alerts only under its X-Platform."""
    carol = make_user("carol")
    make_user("carol", plat=other_platform)
    client = api(carol)
    # Two memberships and no header: the platform is ambiguous.
    response = client.get("/alerts")
    assert (response.status_code, response.json()["error"]["message"]) == (400, "Platform is ambiguous")
    acme = client.post(
        "/alerts", {"title": "acme", "message": "x"}, format="json", HTTP_X_PLATFORM=platform.key
    ).json()["data"]
    globex = client.post(
        "/alerts", {"title": "globex", "message": "x"}, format="json", HTTP_X_PLATFORM=other_platform.key
    ).json()["data"]
    listed = client.get("/alerts", HTTP_X_PLATFORM=platform.key).json()["data"]
    assert [a["id"] for a in listed] == [acme["id"]]
    response = client.get(f"/alerts/{globex['id']}", HTTP_X_PLATFORM=platform.key)
    assert response.status_code == 404
    assert Alert.objects.get(pk=globex["id"]).platform == other_platform
    response = client.get("/alerts", HTTP_X_PLATFORM="nowhere")
    assert response.status_code == 404


def test_user_without_platform_is_refused(api, db):
    from notifications.tests.factories import UserFactory

    response = api(UserFactory(username="drifter")).get("/alerts")
    assert (response.status_code, response.json()["error"]["message"]) == (403, "No platform")


# --- automatic alerts from other services ---------------------------------------------------


@pytest.fixture
def inventory_service(make_user):
    from django.contrib.auth.models import Permission

    service = make_user("inventory-service", is_service_account=True)
    service.memberships.get().permissions.add(
        Permission.objects.get(content_type__app_label="alerts", codename="create_for_user")
    )
    return service


def test_service_account_creates_alert_for_a_member(api, inventory_service, alice):
    response = api(inventory_service).post(
        "/alerts",
        {
            "title": "Overdue Loan",
            "message": "Projector #4 was due back on 2026-03-01",
            "type": "critical",
            "userId": alice.pk,
        },
        format="json",
    )
    assert response.status_code == 201
    alert = Alert.objects.get(pk=response.json()["data"]["id"])
    assert (alert.user, alert.created_by, alert.type) == (alice, inventory_service, "critical")
    assert "userId" not in response.json()["data"]
    assert [a["id"] for a in api(alice).get("/alerts").json()["data"]] == [alert.pk]
    # The service sees no alice alert through its own list.
    assert api(inventory_service).get("/alerts").json()["data"] == []


def test_service_account_cannot_reach_other_platforms(api, inventory_service, make_user, other_platform):
    outsider = make_user("outsider", plat=other_platform)
    response = api(inventory_service).post(
        "/alerts", {"title": "x", "message": "x", "userId": outsider.pk}, format="json"
    )
    assert (response.status_code, response.json()["error"]["message"]) == (404, "User not found")
    response = api(inventory_service).post("/alerts", {"title": "x", "message": "x", "userId": 987654}, format="json")
    assert response.status_code == 404
    assert not Alert.objects.exists()


def test_user_id_needs_service_account_and_permission(api, alice, bob, make_user):
    from django.contrib.auth.models import Permission

    perm = Permission.objects.get(content_type__app_label="alerts", codename="create_for_user")
    unprivileged_service = make_user("reports-service", is_service_account=True)
    privileged_person = make_user("manager", role="ADMIN")
    privileged_person.memberships.get().permissions.add(perm)
    for caller in (bob, unprivileged_service, privileged_person):
        response = api(caller).post("/alerts", {"title": "x", "message": "x", "userId": alice.pk}, format="json")
        assert response.status_code == 403, caller
        assert response.json()["error"] == {
            "code": "permission_denied",
            "message": "Not allowed to create alerts for other users",
            "detail": "Only service accounts holding alerts.create_for_user may pass userId",
        }
    assert not Alert.objects.exists()
    # Naming yourself is always fine.
    response = api(bob).post("/alerts", {"title": "x", "message": "x", "userId": bob.pk}, format="json")
    assert response.status_code == 201


def test_timestamps_in_responses_are_utc(client, create):
    alert = create(isEvent=True, scheduledAt="2026-06-15T09:00:00-05:00")
    assert alert["scheduledAt"] == "2026-06-15T14:00:00Z"
    assert Alert.objects.get(pk=alert["id"]).scheduled_at == datetime(2026, 6, 15, 14, tzinfo=UTC)

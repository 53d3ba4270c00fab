"""Hostile request input (issue 13): each cause of a 500 is a 4xx in the surface's format and writes nothing."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from alerts.models import Alert
from builder.models import Build
from notifications.models import IdempotencyKey, Notification, ScheduledNotification
from notifications.tests.bulk_helpers import V1, future
from templates_app.models import NotificationEvent

pytestmark = pytest.mark.django_db

EVENTS = "/api/notification/v1/orgs/acme-learning/events/"
PREVIEW = "/api/notification/v1/orgs/acme-learning/notification-builder/preview/"
MARK_ALL = "/api/notification/v1/orgs/acme-learning/mark-all-as-read"


@pytest.fixture
def admin(make_user):
    return make_user("ops", role="ADMIN", admin=True, email="ops@example.com")


@pytest.fixture
def client(api, admin):
    return api(admin)


@pytest.fixture
def learner(make_user):
    return make_user("jane.doe", email="jane@example.com")


def counts() -> tuple[int, ...]:
    return (
        ScheduledNotification.objects.count(),
        Notification.objects.count(),
        Alert.objects.count(),
        NotificationEvent.objects.count(),
        Build.objects.count(),
        IdempotencyKey.objects.count(),
    )


def v1_error(response, status: int) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"message", "error"}, body
    return body


def alerts_error(response, status: int) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]


def ibl_error(response, status: int) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert isinstance(body, dict) and body, body
    return body


def raw_post(client, path: str, body: str | bytes, content_type: str = "application/json"):
    return client.generic("POST", path, body, content_type=content_type)


# --- 1. A year-10000 scheduled_at -------------------------------------------------


def test_year_10000_scheduled_at_is_refused_and_nothing_is_stored(client, learner):
    before = counts()
    r = client.post(
        f"{V1}/bulk-in-app",
        {"title": "T", "message": "M", "role": "STUDENT", "scheduled_at": "9999-12-31T23:59:59-14:00"},
        format="json",
    )
    assert v1_error(r, 400)["message"] == "Invalid scheduled_at format"
    assert counts() == before


def test_scheduled_at_beyond_the_horizon_is_refused(client, learner, settings):
    r = client.post(
        f"{V1}/bulk-sms",
        {"message": "M", "role": "STUDENT", "scheduled_at": future(days=settings.INPUT_DATE_HORIZON_DAYS + 2)},
        format="json",
    )
    assert v1_error(r, 400)["message"] == "scheduled_at is too far in the future"
    assert not ScheduledNotification.objects.exists()
    ok = client.post(
        f"{V1}/bulk-sms",
        {"message": "M", "role": "STUDENT", "scheduled_at": future(days=settings.INPUT_DATE_HORIZON_DAYS - 2)},
        format="json",
    )
    assert ok.status_code == 201, ok.json()


def test_rescheduling_beyond_the_horizon_is_refused(client, learner):
    job = client.post(
        f"{V1}/bulk-sms", {"message": "M", "role": "STUDENT", "scheduled_at": future()}, format="json"
    ).json()["data"]
    r = client.patch(f"{V1}/scheduled/{job['id']}", {"scheduled_at": "9999-12-31T23:59:59-14:00"}, format="json")
    v1_error(r, 400)
    r = client.patch(f"{V1}/scheduled/{job['id']}", {"scheduled_at": "9000-01-01T00:00:00Z"}, format="json")
    assert v1_error(r, 400)["message"] == "scheduled_at is too far in the future"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="only PostgreSQL stores times past year 9999")
def test_a_year_10000_row_stored_by_an_older_version_is_listed_shown_and_cancellable(client, learner):
    job = client.post(
        f"{V1}/bulk-sms", {"message": "M", "role": "STUDENT", "scheduled_at": future()}, format="json"
    ).json()["data"]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE notifications_schedulednotification SET scheduled_at = %s::timestamptz, due_at = %s::timestamptz"
            " WHERE id = %s",
            ["10000-01-01T13:59:59Z", "10000-01-01T13:59:59Z", job["id"]],
        )
    listed = client.get(f"{V1}/scheduled")
    assert listed.status_code == 200, listed.content
    [row] = listed.json()["scheduled_notifications"]
    assert row["scheduled_at"].startswith("9999-12-31T23:59:59")
    assert client.get(f"{V1}/scheduled/{job['id']}").status_code == 200
    cancelled = client.post(f"{V1}/scheduled/{job['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["data"]["status"] == "cancelled"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the loader is PostgreSQL's")
def test_times_are_read_in_djangos_zone_whatever_the_sessions_and_out_of_range_ones_clamp():
    from datetime import UTC, datetime

    from django.utils import timezone

    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Tokyo'")
        try:
            cursor.execute(
                "SELECT '2026-03-01T10:00:00Z'::timestamptz, 'infinity'::timestamptz, '-infinity'::timestamptz,"
                " '10000-01-01T00:00:00Z'::timestamptz"
            )
            moment, infinite, before, year_10000 = cursor.fetchone()
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")
    assert moment == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert moment.tzinfo is connection.timezone and timezone.is_aware(moment)
    assert infinite == year_10000 == datetime.max.replace(tzinfo=connection.timezone)
    assert before == datetime.min.replace(tzinfo=connection.timezone)


def test_alert_times_are_bounded(api, learner):
    client = api(learner)
    before = counts()
    for field, value in [
        ("notifyAt", "9999-12-31T23:59:59-14:00"),
        ("notifyAt", "0001-01-01T00:00:00+14:00"),
        ("notifyAt", "9000-01-01T00:00:00Z"),
        ("scheduledAt", "9000-01-01T00:00:00Z"),
    ]:
        body = {"title": "T", "message": "M", "isEvent": True, "scheduledAt": "2027-01-01T00:00:00Z", field: value}
        error = alerts_error(client.post("/alerts", body, format="json"), 400)
        assert field in error["fields"], error
    assert counts() == before


def test_builder_process_on_is_bounded(api, admin, learner):
    client = api(admin, keyword="Token")
    body = {
        "template_data": {"message_title": "T", "message_body": "B"},
        "channels": [1],
        "sources": [{"type": "email", "data": "jane@example.com"}],
        "process_on": "9000-01-01T00:00:00Z",
    }
    r = client.post(PREVIEW, body, format="json")
    assert "process_on" in ibl_error(r, 400), r.json()
    assert not Build.objects.exists()


# --- 3. Bodies that are JSON but not an object --------------------------------------


@pytest.mark.parametrize("body", ["[null,null]", '"s"', "null", "123", "[]"])
def test_bulk_body_that_is_not_an_object(client, learner, body):
    before = counts()
    r = raw_post(client, f"{V1}/bulk-in-app", body)
    assert "object" in v1_error(r, 400)["error"]
    assert counts() == before


@pytest.mark.parametrize(
    "path,check", [("/alerts", alerts_error), (EVENTS, ibl_error), (PREVIEW, ibl_error), (f"{V1}/bulk-sms", v1_error)]
)
def test_non_object_bodies_on_every_surface(client, path, check):
    check(raw_post(client, path, "[1,2]"), 400)


# --- 4. Deep nesting --------------------------------------------------------------


@pytest.mark.parametrize(
    "path,check", [(f"{V1}/bulk-sms", v1_error), ("/alerts", alerts_error), (EVENTS, ibl_error), (PREVIEW, ibl_error)]
)
@pytest.mark.parametrize("depth", [33, 100_000])
def test_deep_nesting_is_refused(client, learner, path, check, depth):
    before = counts()
    body = '{"message": ' + "[" * depth + "]" * depth + "}"
    check(raw_post(client, path, body), 400)
    assert counts() == before


def test_nesting_up_to_the_bound_is_parsed(client, learner):
    # 31 levels inside the body object: parsed, then refused by the bulk rules (message is no string).
    body = '{"message": ' + "[" * 31 + "]" * 31 + ', "role": "STUDENT"}'
    assert v1_error(raw_post(client, f"{V1}/bulk-sms", body), 400)["message"] == "Invalid message format"


# --- 5. Bodies over DATA_UPLOAD_MAX_MEMORY_SIZE -------------------------------------


def test_json_body_over_the_upload_limit_is_413_in_each_format(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    big = json.dumps({"title": "T", "message": "x" * 20_000, "role": "STUDENT"})
    before = counts()
    v1_error(raw_post(client, f"{V1}/bulk-in-app", big), 413)
    assert alerts_error(raw_post(client, "/alerts", big), 413)["code"] == "too_large"
    assert "detail" in ibl_error(raw_post(client, EVENTS, big), 413)
    assert counts() == before


def test_form_body_over_the_upload_limit_is_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    r = client.post(
        f"{V1}/bulk-email",
        {"subject": "S", "message": "x" * 20_000, "role": "STUDENT"},
        format="multipart",
    )
    v1_error(r, 413)
    r = raw_post(client, MARK_ALL, "a=" + "x" * 20_000, content_type="application/x-www-form-urlencoded")
    ibl_error(r, 413)


# --- 6. Too many form fields -------------------------------------------------------


def test_too_many_form_fields_is_400(client, learner):
    body = "&".join(f"f{i}=1" for i in range(1500))
    r = raw_post(client, MARK_ALL, body, content_type="application/x-www-form-urlencoded")
    assert "detail" in ibl_error(r, 400)
    r = raw_post(client, f"{V1}/bulk-email", body, content_type="application/x-www-form-urlencoded")
    v1_error(r, 400)


# --- 7 and 8. NUL bytes and lone surrogates ------------------------------------------


BAD_TEXT = [pytest.param("a\\u0000b", id="nul"), pytest.param("a\\ud800b", id="lone-surrogate")]


@pytest.mark.parametrize("bad", BAD_TEXT)
@pytest.mark.parametrize(
    "path,fields",
    [
        ("bulk-in-app", {"title": "T", "message": "M", "role": "STUDENT"}),
        ("bulk-email", {"subject": "S", "message": "M", "role": "STUDENT"}),
        ("bulk-sms", {"message": "M", "role": "STUDENT"}),
    ],
)
def test_bad_characters_in_bulk_text(client, learner, bad, path, fields):
    for name in fields:
        if name == "role":
            continue
        before = counts()
        body = json.dumps(fields)[:-1] + f', "{name}": "{bad}"}}'
        v1_error(raw_post(client, f"{V1}/{path}", body), 400)
        assert counts() == before


def test_nul_in_a_multipart_email_field(client, learner):
    r = client.post(f"{V1}/bulk-email", {"subject": "S\x00", "message": "M", "role": "STUDENT"}, format="multipart")
    assert v1_error(r, 400)["message"] == "Invalid subject format"
    assert not Notification.objects.exists()


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_bad_characters_in_event_context(client, learner, bad):
    before = counts()
    body = '{"type": "USER_NOTIF_COURSE_ENROLLMENT", "recipients": ["jane.doe"], "context": {"course_name": "%s"}}'
    ibl_error(raw_post(client, EVENTS, body % bad), 400)
    assert counts() == before


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_bad_characters_in_an_alert(api, learner, bad):
    r = raw_post(api(learner), "/alerts", '{"title": "T", "message": "' + bad + '"}')
    alerts_error(r, 400)
    assert not Alert.objects.exists()


# --- 9. Page numbers, offsets and ids beyond bigint -----------------------------------


def test_huge_page_and_offset(client, learner):
    huge = "99999999999999999999"
    assert "page" in alerts_error(client.get("/alerts", {"page": huge}), 400)["fields"]
    v1_error(client.get(f"{V1}/scheduled", {"page": huge}), 400)
    v1_error(client.get(f"{V1}/scheduled", {"page": "1000001"}), 400)
    v1_error(client.get(V1, {"offset": "9223372036854775807"}), 400)
    assert client.get(V1, {"offset": "100000000"}).status_code == 200
    assert client.get("/alerts", {"page": "1000000"}).status_code == 200


def test_ids_beyond_bigint_in_paths_are_404(client, learner):
    huge = "99999999999999999999"
    v1_error(client.get(f"{V1}/scheduled/{huge}"), 404)
    v1_error(client.post(f"{V1}/scheduled/{huge}/cancel"), 404)
    alerts_error(client.get(f"/alerts/{huge}"), 404)


def test_user_ids_beyond_bigint(client, learner):
    r = client.post(f"{V1}/bulk-sms", {"message": "M", "user_ids": [2**63]}, format="json")
    assert v1_error(r, 400)["message"] == "Invalid user_ids format"


def test_nan_and_infinity_are_not_json(client):
    v1_error(raw_post(client, f"{V1}/bulk-sms", '{"message": NaN}'), 400)
    v1_error(raw_post(client, f"{V1}/bulk-sms", '{"message": 1e999}'), 400)


@pytest.mark.parametrize(
    "path,keys",
    [("/api/v1/notifications/bulk-sms", {"message", "error"}), ("/alerts", {"error"}), (EVENTS, {"detail"})],
)
def test_django_level_refusals_use_the_surface_format(rf, path, keys):
    from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent

    from notifications.api.errors import handler400

    too_big = handler400(rf.post(path), RequestDataTooBig("too big"))
    assert too_big.status_code == 413 and set(json.loads(too_big.content)) == keys
    too_many = handler400(rf.post(path), TooManyFieldsSent("too many"))
    assert too_many.status_code == 400 and set(json.loads(too_many.content)) == keys


@pytest.mark.parametrize(
    "path",
    [
        "/api/notification/v1/orgs/a%00b/notifications/",
        "/api/notification/v1/orgs/acme-learning/users/a%00b/notifications/",
        "/api/notification/v1/platforms/acme-learning/templates/A%00B/",
        "/api/notification/v1/orgs/acme-learning/mentors/a%00b/",
        "/api/notification/v1/orgs/acme-learning/notification-builder/00000000-0000-0000-0000-000000000000/"
        "recipients/?search=a%00b",
        "/api/v1/notifications/scheduled?status=a%00b",
        "/alerts?type=a%00b",
    ],
)
def test_nul_in_the_url_is_400(client, path):
    response = client.get(path)
    assert response.status_code == 400, response.content


def test_nul_in_x_platform_is_400(client):
    v1_error(client.get(V1, HTTP_X_PLATFORM="a\x00b"), 400)


@pytest.mark.parametrize("segment", ["%ED%A0%80", "%FF%FE", "%C0%80", "a%25%00"])
def test_broken_utf8_in_the_path_is_not_a_server_error(client, segment):
    for path in (f"/api/notification/v1/orgs/{segment}/notifications/", f"/api/v1/notifications/scheduled/{segment}"):
        assert client.get(path).status_code in (400, 404), path


def test_every_operation_documents_the_shared_errors(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"400", "429"} <= codes, (method, path)
            if "requestBody" in operation:
                assert {"413", "415"} <= codes, (method, path)
            if {} not in operation.get("security", [{}]):
                assert {"401", "403", "404"} <= codes, (method, path)
    inbox_400 = schema["paths"]["/api/notification/v1/orgs/{org}/notifications/bulk-update/"]["patch"]["responses"]
    assert {"$ref": "#/components/schemas/IBLDetailError"} in inbox_400["400"]["content"]["application/json"]["schema"][
        "anyOf"
    ]

"""Every surface answers every error in its own format."""

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.urls("notifications.tests.probe_urls")]

ALERTS, V1, IBL = "/alerts/", "/api/v1/", "/api/notification/v1/"


@pytest.fixture
def client(make_user, api):
    return api(make_user("jane"))


def test_400_formats(client):
    assert client.post(V1 + "probe", {}, format="json").json() == {
        "message": "title: This field is required.",
        "error": "title: This field is required.",
    }
    assert client.post(ALERTS + "probe", {}, format="json").json() == {
        "error": {
            "code": "invalid",
            "message": "title: This field is required.",
            "fields": {"title": ["This field is required."]},
        }
    }
    assert client.post(IBL + "probe", {}, format="json").json() == {"title": ["This field is required."]}


def test_401_formats(api):
    anon = api()
    r = anon.get(V1 + "probe")
    assert r.status_code == 401
    assert r.json() == {"message": "Unauthorized", "error": "Authentication credentials were not provided."}
    r = anon.get(ALERTS + "probe")
    assert r.status_code == 401
    assert r.json() == {
        "error": {"code": "not_authenticated", "message": "Authentication credentials were not provided."}
    }
    r = anon.get(IBL + "probe")
    assert r.status_code == 401
    assert r.json() == {"detail": "Authentication credentials were not provided."}


def test_403_formats(client):
    r = client.get(V1 + "guarded")
    assert (r.status_code, r.json()) == (
        403,
        {"message": "Forbidden", "error": "Missing permission: notifications.bulk_sms"},
    )
    r = client.get(ALERTS + "guarded")
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    r = client.get(IBL + "guarded")
    assert (r.status_code, r.json()) == (403, {"detail": "Missing permission: notifications.bulk_sms"})


def test_404_formats_for_unknown_paths(client):
    r = client.get(V1 + "nowhere")
    assert (r.status_code, r.json()) == (404, {"message": "Not found", "error": "Not found."})
    r = client.get(ALERTS + "nowhere/at/all")
    assert (r.status_code, r.json()) == (404, {"error": {"code": "not_found", "message": "Not found."}})
    r = client.get(IBL + "nowhere")
    assert (r.status_code, r.json()) == (404, {"detail": "Not found."})


def test_405_formats(client):
    r = client.delete(V1 + "probe")
    assert (r.status_code, r.json()) == (
        405,
        {"message": "Method not allowed", "error": 'Method "DELETE" not allowed.'},
    )
    r = client.delete(ALERTS + "probe")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = client.delete(IBL + "probe")
    assert (r.status_code, r.json()) == (405, {"detail": 'Method "DELETE" not allowed.'})


def test_429_formats_carry_retry_after(client):
    for prefix in (V1, ALERTS, IBL):
        r = client.get(prefix + "probe", {"throttle": 1})
        assert r.status_code == 429 and r["Retry-After"] == "7"
    assert client.get(V1 + "probe", {"throttle": 1}).json()["message"] == "Too many requests"


def test_unexpected_errors_are_500_in_surface_format(client, caplog):
    r = client.get(V1 + "probe", {"crash": 1})
    assert (r.status_code, r.json()) == (500, {"message": "Internal server error", "error": "Internal server error"})
    r = client.get(ALERTS + "probe", {"crash": 1})
    assert r.status_code == 500 and r.json()["error"]["code"] == "error"
    r = client.get(IBL + "probe", {"crash": 1})
    assert (r.status_code, r.json()) == (500, {"detail": "Internal server error"})


def test_healthz(client, api):
    from notifications import scheduler

    scheduler.sweep_completed()
    r = api().get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["checks"]) == (
        "ok",
        {"database": "ok", "redis": "ok", "sweep": "ok", "due_work": "ok"},
    )


def test_schema_and_docs_are_served(api):
    r = api().get("/api/schema/")
    assert r.status_code == 200
    assert b"/api/v1/notifications" in r.content
    assert api().get("/api/docs/").status_code == 200


def test_platform_header_picks_among_memberships(make_user, api):
    from notifications.tests.factories import PlatformFactory, make_member

    user = make_user("jane")
    other = PlatformFactory(key="other")
    make_member(platform=other, username="jane")
    client = api(user)
    r = client.get("/api/v1/notifications")
    assert r.status_code == 400 and r.json()["message"] == "Platform is ambiguous"
    assert client.get("/api/v1/notifications", HTTP_X_PLATFORM="other").status_code == 200
    r = client.get("/api/v1/notifications", HTTP_X_PLATFORM="nope")
    assert r.status_code == 404

"""Rate limits on every surface: 429 with Retry-After, in each surface's error format."""

import pytest

from .conftest import BASE

pytestmark = [pytest.mark.django_db, pytest.mark.urls("notifications.tests.probe_urls")]


@pytest.fixture
def rates(settings):
    def _set(**rates):
        rest = dict(settings.REST_FRAMEWORK)
        rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], **rates}
        settings.REST_FRAMEWORK = rest

    return _set


def _retry_after(response) -> int:
    value = int(response["Retry-After"])
    assert 0 < value <= 60
    return value


def test_per_user_limit_on_every_surface(rates, api, make_user):
    rates(user="2/minute")
    expected = {
        "/alerts/probe": lambda b: b["error"]["code"] == "throttled" and "throttled" in b["error"]["message"],
        "/api/v1/probe": lambda b: b["message"] == "Too many requests" and "throttled" in b["error"],
        "/api/notification/v1/probe": lambda b: "throttled" in b["detail"],
    }
    for index, (path, shape) in enumerate(expected.items()):
        client = api(make_user(f"user{index}"))
        assert client.get(path).status_code == 200
        assert client.get(path).status_code == 200
        r = client.get(path)
        assert r.status_code == 429, path
        _retry_after(r)
        assert shape(r.json()), (path, r.json())


def test_real_endpoints_are_throttled(rates, api, make_user, admin_api):
    rates(user="1/minute")
    jane = api(make_user("jane"))
    assert jane.get("/api/v1/notifications").status_code == 200
    r = jane.get("/api/v1/notifications")
    assert r.status_code == 429 and _retry_after(r)
    assert admin_api.get(BASE).status_code == 200
    r = admin_api.get(BASE)
    assert r.status_code == 429 and r.json()["detail"].startswith("Request was throttled")


def test_platform_limit_is_shared_by_its_users(rates, api, make_user):
    from notifications.tests.factories import PlatformFactory, make_member

    rates(platform="3/minute")
    a, b = api(make_user("a", admin=True)), api(make_user("b", admin=True))
    assert a.get(BASE).status_code == 200
    assert b.get(BASE).status_code == 200
    assert a.get("/api/v1/notifications").status_code == 200  # the caller's only platform counts too
    r = b.get(BASE)
    assert r.status_code == 429 and _retry_after(r)
    # Another platform's users have their own budget ...
    globex_admin = api(make_member(platform=PlatformFactory(key="globex"), username="g", admin=True))
    assert globex_admin.get("/api/notification/v1/platforms/globex/templates/").status_code == 200
    # ... and cannot spend acme's by calling its paths.
    for _ in range(5):
        assert globex_admin.get(BASE).status_code == 404


def test_template_test_send_has_its_own_scope(rates, admin_api):
    rates(template_test="1/minute")
    path = BASE + "USER_NOTIF_COURSE_ENROLLMENT/test/"
    assert admin_api.post(path, {}, format="json").status_code == 200
    r = admin_api.post(path, {}, format="json")
    assert r.status_code == 429 and _retry_after(r)
    assert admin_api.get(BASE).status_code == 200  # other endpoints are unaffected


def test_anonymous_requests_are_limited_per_address(rates, api):
    rates(anon="2/minute")
    anon = api()
    path = "/api/notification/v1/unsubscribe/whatever/"
    assert anon.get(path).status_code == 404
    assert anon.get(path).status_code == 404
    r = anon.get(path)
    assert r.status_code == 429 and _retry_after(r)

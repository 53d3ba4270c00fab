"""Every route against every kind of caller, generated from the URL configuration.

The routes come from walking `config.urls`; each (route, method) must have a
row in `EXPECTED`, so a new route without one fails `test_every_route_has_an_entry`.
The callers, all aimed at platform B with B's real objects in the URL:

- `admin`:  platform admin (role ADMIN) of B
- `cross`:  platform admin (role ADMIN) of A who is a plain STUDENT of B
- `member`: a plain STUDENT of B
- `outsider`: a member of A only
- `anon`:   no credentials

`OK` means the call got past authorisation (any 2xx, or the endpoint's own
400/409/422 for the empty or minimal body sent); denials are exact statuses.
A 500 is never acceptable. The Django admin (`/admin/`) is tested on its own
(the tenant-scoped admin's tests) and is the one prefix left out here.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import Alert
from builder.models import Build
from notifications.models import (
    AuthToken,
    Membership,
    Notification,
    PlatformSMTPSettings,
    Role,
    ScheduledNotification,
)
from notifications.tests.factories import PlatformFactory, make_member
from templates_app.models import Mentor

OK = "ok"
CALLERS = ("admin", "cross", "member", "outsider", "anon")
EXCLUDED_PREFIXES = ("admin/",)

# Expected outcome per caller, in CALLERS order.
ADMIN_ONLY = (OK, 403, 403, 404, 401)  # a key of the ADMIN bundle, or platform administration
MEMBERS = (OK, OK, OK, 404, 401)  # any member, acting on their own data
OWNER_OR_ADMIN = (OK, 404, OK, 404, 401)  # the member's data: themselves or B's admin; others a 404
OWNER_ONLY = (404, 404, OK, 404, 401)  # the member's own alert: nobody else sees it
PUBLIC_200 = (200, 200, 200, 200, 200)
PUBLIC_400 = (400, 400, 400, 400, 400)
PUBLIC_404 = (404, 404, 404, 404, 404)

EXPECTED: dict[tuple[str, str], tuple] = {
    # -- shared --------------------------------------------------------------------------------
    ("healthz", "GET"): PUBLIC_200,
    ("auth-token", "POST"): PUBLIC_400,  # no credentials in the body
    ("schema", "GET"): PUBLIC_200,
    ("swagger-ui", "GET"): PUBLIC_200,
    # -- /alerts -------------------------------------------------------------------------------
    ("alerts", "GET"): MEMBERS,
    ("alerts", "POST"): MEMBERS,
    ("alerts-read-all", "PATCH"): MEMBERS,
    ("alert-detail", "GET"): OWNER_ONLY,
    ("alert-detail", "PUT"): OWNER_ONLY,
    ("alert-detail", "PATCH"): OWNER_ONLY,
    ("alert-detail", "DELETE"): OWNER_ONLY,
    ("alert-read", "PATCH"): OWNER_ONLY,
    # -- /api/v1 -------------------------------------------------------------------------------
    ("v1-notifications", "GET"): MEMBERS,
    ("v1-notifications-unread", "GET"): MEMBERS,
    ("v1-bulk-sms", "POST"): ADMIN_ONLY,
    ("v1-bulk-email", "POST"): ADMIN_ONLY,
    ("v1-bulk-push", "POST"): ADMIN_ONLY,
    ("v1-bulk-in-app", "POST"): ADMIN_ONLY,
    ("v1-scheduled-list", "GET"): ADMIN_ONLY,
    ("v1-scheduled-detail", "GET"): ADMIN_ONLY,
    ("v1-scheduled-detail", "PATCH"): ADMIN_ONLY,
    ("v1-scheduled-cancel", "POST"): ADMIN_ONLY,
    ("v1-scheduled-deliveries", "GET"): ADMIN_ONLY,
    # -- /api/notification/v1: inbox, devices, SMTP ----------------------------------------------
    ("ibl-org-notifications", "GET"): MEMBERS,
    ("ibl-org-notifications", "PUT"): MEMBERS,
    ("ibl-org-notifications-bulk", "PATCH"): MEMBERS,
    ("ibl-mark-all-read", "POST"): MEMBERS,
    ("ibl-user-notifications", "GET"): OWNER_OR_ADMIN,
    ("ibl-user-notifications", "PUT"): OWNER_OR_ADMIN,
    ("ibl-user-notifications-bulk", "PATCH"): OWNER_OR_ADMIN,
    ("ibl-user-notification", "DELETE"): OWNER_OR_ADMIN,
    ("ibl-user-notifications-count", "GET"): OWNER_OR_ADMIN,
    ("ibl-register-fcm-token", "POST"): OWNER_OR_ADMIN,
    ("ibl-register-fcm-token", "DELETE"): OWNER_OR_ADMIN,
    ("ibl-smtp-settings", "GET"): ADMIN_ONLY,
    ("ibl-smtp-settings", "PUT"): ADMIN_ONLY,
    ("ibl-smtp-settings", "PATCH"): ADMIN_ONLY,
    ("ibl-smtp-settings", "DELETE"): ADMIN_ONLY,
    ("ibl-smtp-test", "POST"): ADMIN_ONLY,
    # -- templates, events, preferences, mentors -------------------------------------------------
    ("templates-list", "GET"): ADMIN_ONLY,
    ("templates-list", "POST"): ADMIN_ONLY,
    ("templates-channels", "GET"): ADMIN_ONLY,
    ("templates-spas", "GET"): ADMIN_ONLY,
    ("templates-detail", "GET"): ADMIN_ONLY,
    ("templates-detail", "PATCH"): ADMIN_ONLY,
    ("templates-detail", "DELETE"): ADMIN_ONLY,
    ("templates-toggle", "PATCH"): ADMIN_ONLY,
    ("templates-reset", "POST"): ADMIN_ONLY,
    ("templates-test", "POST"): ADMIN_ONLY,
    ("templates-preview", "POST"): ADMIN_ONLY,
    ("templates-events", "POST"): ADMIN_ONLY,
    ("templates-preferences", "GET"): OWNER_OR_ADMIN,
    ("templates-preferences", "PATCH"): OWNER_OR_ADMIN,
    ("templates-preferences", "DELETE"): OWNER_OR_ADMIN,
    ("templates-mentors", "GET"): ADMIN_ONLY,
    ("templates-mentors", "POST"): ADMIN_ONLY,
    ("templates-mentor", "GET"): ADMIN_ONLY,
    ("templates-mentor", "PATCH"): ADMIN_ONLY,
    ("templates-mentor", "DELETE"): ADMIN_ONLY,
    ("templates-activity", "GET"): ADMIN_ONLY,
    ("templates-activity", "POST"): ADMIN_ONLY,
    ("templates-unsubscribe", "GET"): PUBLIC_404,  # the signed token is the credential; this one is bad
    ("templates-unsubscribe", "POST"): PUBLIC_404,
    # -- builder -----------------------------------------------------------------------------------
    ("builder-list", "GET"): ADMIN_ONLY,
    ("builder-context", "GET"): ADMIN_ONLY,
    ("builder-validate-source", "POST"): ADMIN_ONLY,
    ("builder-preview", "POST"): ADMIN_ONLY,
    ("builder-send", "POST"): ADMIN_ONLY,
    ("builder-detail", "GET"): ADMIN_ONLY,
    ("builder-recipients", "GET"): ADMIN_ONLY,
    ("builder-cancel", "POST"): ADMIN_ONLY,
}
# The WebSocket (config.asgi's router, not config.urls): ws_connect on B.
WEBSOCKET_EXPECTED = {"admin": True, "cross": True, "member": True, "outsider": False, "anon": False}

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def _methods(callback) -> list[str]:
    cls = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if cls is None:
        return ["GET"]  # a plain function view
    return [m for m in METHODS if hasattr(cls, m.lower())]


def routes() -> list[tuple[str, str, str]]:
    """(name, route, method) for every route of config.urls outside the excluded prefixes."""
    found = []
    for route, entry in _walk(get_resolver("config.urls").url_patterns):
        if route.startswith(EXCLUDED_PREFIXES):
            continue
        for method in _methods(entry.callback):
            found.append((entry.name, route, method))
    return found


ROUTES = routes()


def test_every_route_has_an_entry():
    missing = sorted({(name, method) for name, _, method in ROUTES} - set(EXPECTED))
    assert not missing, f"routes without an entry in EXPECTED: {missing}"
    stale = sorted(set(EXPECTED) - {(name, method) for name, _, method in ROUTES})
    assert not stale, f"entries for routes that no longer exist: {stale}"


@pytest.fixture
def world():
    """Platforms A and B, the five callers, and B's objects the URLs name."""
    a, b = PlatformFactory(key="platform-a"), PlatformFactory(key="platform-b")
    admin = make_member(platform=b, username="b-admin", role=Role.ADMIN, admin=True)
    cross = make_member(platform=a, username="a-admin", role=Role.ADMIN, admin=True)
    Membership.objects.create(user=cross, platform=b, role=Role.STUDENT)
    member = make_member(platform=b, username="b-member", role=Role.STUDENT)
    outsider = make_member(platform=a, username="a-member", role=Role.STUDENT)
    make_member(platform=b, username="b-student", role=Role.STUDENT)
    callers = {"admin": admin, "cross": cross, "member": member, "outsider": outsider, "anon": None}

    notification = Notification.objects.create(
        platform=b,
        user=member,
        recipient_key=f"user:{member.pk}",
        channel="in_app",
        source="matrix:1",
        title="Hello",
        body="B's notification",
        delivery_status="sent",
        sent_at=timezone.now(),
    )
    job = ScheduledNotification.objects.create(
        platform=b,
        channel="in_app",
        title="B's job",
        message="For B",
        target_role=Role.STUDENT,
        scheduled_at=timezone.now() + timedelta(days=3),
        due_at=timezone.now() + timedelta(days=3),
        created_by=admin,
    )
    alert = Alert.objects.create(platform=b, user=member, title="B's alert", message="Only mine")
    Mentor.objects.create(platform=b, unique_id="mentor-b", name="B's mentor")
    # An address literal: saving it again never needs a name lookup.
    PlatformSMTPSettings.objects.create(platform=b, host="192.0.2.10", from_email="b@example.com")
    build = Build.objects.create(platform=b, created_by=admin, channels=["in_app"])
    kwargs = {
        "org": b.key,
        "platform_key": b.key,
        "user_id": member.username,
        "notification_id": str(notification.pk),
        "pk": job.pk,
        "id": alert.pk,
        "notification_type": "USER_NOTIF_COURSE_ENROLLMENT",
        "unique_id": "mentor-b",
        "build_id": str(build.pk),
        "token": "not-a-valid-unsubscribe-token",
    }
    return {"a": a, "b": b, "callers": callers, "kwargs": kwargs}


def _url(route: str, kwargs: dict) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(kwargs[m.group(1)]), route)


def _client(user, platform_key: str) -> APIClient:
    client = APIClient()
    if user is not None:
        _, raw = AuthToken.issue(user=user, name="matrix")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_PLATFORM=platform_key)
    else:
        client.credentials(HTTP_X_PLATFORM=platform_key)
    return client


def _outcome(expected, status: int):
    if expected == OK:
        return OK if 200 <= status < 300 or status in (400, 409, 422) else status
    return status


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "route", "method"), ROUTES, ids=[f"{m} {r}" for _, r, m in ROUTES])
def test_route_matrix(world, name, route, method):
    expected = dict(zip(CALLERS, EXPECTED[(name, method)], strict=True))
    url = _url(route, world["kwargs"])
    got = {}
    for caller in CALLERS:
        client = _client(world["callers"][caller], world["b"].key)
        # Each caller meets the same data: what one call changed is rolled back.
        with transaction.atomic():
            response = getattr(client, method.lower())(url, {}, format="json")
            transaction.set_rollback(True)
        assert response.status_code != 500, (caller, method, url)
        got[caller] = _outcome(expected[caller], response.status_code)
    assert got == expected, f"{method} {url}"


@pytest.mark.django_db(transaction=True)
def test_websocket_matrix(world):
    from config.asgi import application

    results = {}

    async def attempt(token: str | None) -> bool:
        query = f"?platform={world['b'].key}" + (f"&token={token}" if token else "")
        socket = WebsocketCommunicator(application, f"/api/v1/ws/connect{query}")
        connected, _ = await socket.connect()
        if connected:
            await socket.disconnect()
        return connected

    for caller, user in world["callers"].items():
        token = AuthToken.issue(user=user, name="ws")[1] if user else None
        results[caller] = async_to_sync(attempt)(token)
    assert results == WEBSOCKET_EXPECTED


def test_matrix_size():
    """The matrix covers the three surfaces: routes, (route, method) pairs, five callers each."""
    assert len(ROUTES) == len(EXPECTED)
    assert len({route for _, route, _ in ROUTES}) >= 40


PUBLIC_ROUTES = {"healthz", "auth-token", "schema", "swagger-ui", "templates-unsubscribe"}


def test_every_api_view_authorises_through_the_one_family():
    """No view falls back to the default IsAuthenticated or a permission class of its own kind."""
    from notifications.api.permissions import PlatformPermission

    callbacks = {entry.name: entry.callback for _, entry in _walk(get_resolver("config.urls").url_patterns)}
    for name, _, method in ROUTES:
        if name in PUBLIC_ROUTES:
            continue
        cls = callbacks[name].view_class
        view = cls()
        view.request = type("Request", (), {"method": method})()
        view.kwargs = {}
        classes = [type(p) for p in view.get_permissions()]
        assert classes and all(issubclass(c, PlatformPermission) for c in classes), (name, method, classes)

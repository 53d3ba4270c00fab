"""Every route against every kind of caller, generated from the URL configuration.

The routes come from walking `config.urls`; each (route, method) must have a
row in `EXPECTED`, so a new route without one fails `test_every_route_has_an_entry`.
The callers, all aimed at platform B with B's real objects in the URL:

- `admin`:  platform admin (role ADMIN) of B
- `cross`:  platform admin (role ADMIN) of A who is a plain STUDENT of B
- `member`: a plain STUDENT of B
- `outsider`: a member of A only
- `anon`:   no credentials

Each cell is the exact status: for a caller who may act, what the endpoint
answers to the empty body sent (200, or its own 400 for a missing field); for
the others 401, 403 or 404. A 500 is never acceptable. The Django admin (`/admin/`) is tested on its own
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
    PlatformProviderCredentials,
    PlatformSMTPSettings,
    Role,
    ScheduledNotification,
    Suppression,
)
from notifications.tests.factories import PlatformFactory, make_member
from templates_app.models import FrequencyCap, Mentor
from webhooks.models import WebhookEndpoint, WebhookMessage

CALLERS = ("admin", "cross", "member", "outsider", "anon")
EXCLUDED_PREFIXES = ("admin/",)


# The shapes of the rows, in CALLERS order; `ok` is the status of a call that got
# past authorisation with the empty or minimal body sent (200, or the endpoint's
# own 400 for a missing field).
def admin_only(ok):  # a key of the ADMIN bundle, or administering the platform
    return (ok, 403, 403, 404, 401)


def members(ok):  # any member of the platform, on their own data
    return (ok, ok, ok, 404, 401)


def owner_or_admin(ok):  # the member a path names: themselves or the platform's admin; others 404
    return (ok, 404, ok, 404, 401)


def owner_only(ok):  # the member's own alert: nobody else learns it exists
    return (404, 404, ok, 404, 401)


def public(status):  # no credentials needed; everyone gets the same answer
    return (status,) * 5


EXPECTED: dict[tuple[str, str], tuple[int, ...]] = {
    # -- shared --------------------------------------------------------------------------------
    ("healthz", "GET"): public(200),
    ("auth-token", "POST"): public(400),  # no credentials in the body
    ("schema", "GET"): public(200),
    ("swagger-ui", "GET"): public(200),
    # Prometheus metrics: by METRICS_TOKEN or from METRICS_ALLOWED_NETWORKS, and the
    # test client calls from loopback, which the default allows.
    ("metrics", "GET"): public(200),
    # Uploaded files on the local disk: public URLs (a push image), none here.
    ("media", "GET"): public(404),
    # -- the learner's inbox page (session sign-in; API tokens count for nothing there) ---------
    ("inbox", "GET"): public(302),  # to the sign-in page
    ("inbox-login", "GET"): public(200),
    ("inbox-login", "POST"): public(200),  # the form again, with its errors
    ("inbox-login", "PUT"): public(200),
    ("inbox-logout", "GET"): public(405),
    ("inbox-token", "GET"): public(405),
    # -- the v1 inbox's own writes and inbox tokens ---------------------------------------------
    ("v1-notifications-read-all", "POST"): members(200),
    ("v1-notification-read", "POST"): owner_only(200),
    ("v1-notification-dismiss", "POST"): owner_only(200),
    ("v1-inbox-tokens", "POST"): admin_only(400),  # no user named
    # Africa's Talking's delivery reports: unauthenticated; the empty body is no report.
    ("v1-africastalking-delivery-reports", "POST"): public(400),
    # AfroMessage's status reports: the URL must carry the delivery id we signed; none here.
    ("v1-afromessage-status-reports", "GET"): public(403),
    ("v1-afromessage-status-reports", "POST"): public(403),
    # -- /alerts -------------------------------------------------------------------------------
    ("alerts", "GET"): members(200),
    ("alerts", "POST"): members(400),
    ("alerts-read-all", "PATCH"): members(200),
    ("alert-detail", "GET"): owner_only(200),
    ("alert-detail", "PUT"): owner_only(200),
    ("alert-detail", "PATCH"): owner_only(200),
    ("alert-detail", "DELETE"): owner_only(200),
    ("alert-read", "PATCH"): owner_only(200),
    # -- /api/v1 -------------------------------------------------------------------------------
    ("v1-notifications", "GET"): members(200),
    ("v1-notifications-unread", "GET"): members(200),
    ("v1-bulk-sms", "POST"): admin_only(400),
    ("v1-bulk-email", "POST"): admin_only(400),
    ("v1-bulk-push", "POST"): admin_only(400),
    ("v1-bulk-in-app", "POST"): admin_only(400),
    ("v1-scheduled-list", "GET"): admin_only(200),
    ("v1-scheduled-detail", "GET"): admin_only(200),
    ("v1-scheduled-detail", "PATCH"): admin_only(200),
    ("v1-scheduled-cancel", "POST"): admin_only(200),
    ("v1-scheduled-deliveries", "GET"): admin_only(200),
    # -- /api/notification/v1: inbox, devices, SMTP ----------------------------------------------
    ("ibl-org-notifications", "GET"): members(200),
    ("ibl-org-notifications", "PUT"): members(400),
    ("ibl-org-notifications-bulk", "PATCH"): members(400),
    ("ibl-mark-all-read", "POST"): members(200),
    ("ibl-user-notifications", "GET"): owner_or_admin(200),
    ("ibl-user-notifications", "PUT"): owner_or_admin(400),
    ("ibl-user-notifications-bulk", "PATCH"): owner_or_admin(400),
    ("ibl-user-notification", "DELETE"): owner_or_admin(200),
    ("ibl-user-notifications-count", "GET"): owner_or_admin(200),
    ("ibl-register-fcm-token", "POST"): owner_or_admin(400),
    ("ibl-register-fcm-token", "DELETE"): owner_or_admin(400),
    ("ibl-smtp-settings", "GET"): admin_only(200),
    ("ibl-smtp-settings", "PUT"): admin_only(400),
    ("ibl-smtp-settings", "PATCH"): admin_only(400),
    ("ibl-smtp-settings", "DELETE"): admin_only(200),
    ("ibl-smtp-test", "POST"): admin_only(400),
    ("ibl-sms-provider-credentials", "GET"): admin_only(200),
    ("ibl-sms-provider-credentials", "PUT"): admin_only(400),  # Africa's Talking needs a username
    ("ibl-sms-provider-credentials", "PATCH"): admin_only(200),
    ("ibl-sms-provider-credentials", "DELETE"): admin_only(200),
    # -- outbound webhooks (webhooks app, IBL surface) ------------------------------------------
    ("ibl-webhooks", "GET"): admin_only(200),
    ("ibl-webhooks", "POST"): admin_only(400),  # url and event_types are required
    ("ibl-webhook", "GET"): admin_only(200),
    ("ibl-webhook", "PATCH"): admin_only(200),  # nothing given, nothing changes
    ("ibl-webhook", "DELETE"): admin_only(204),
    ("ibl-webhook-secret", "GET"): admin_only(200),
    ("ibl-webhook-secret", "POST"): admin_only(200),  # rotates
    ("ibl-webhook-messages", "GET"): admin_only(200),
    ("ibl-webhook-message", "GET"): admin_only(200),
    ("ibl-webhook-message-replay", "POST"): admin_only(202),
    ("ibl-webhook-replay-failed", "POST"): admin_only(202),
    ("ibl-suppressions", "GET"): admin_only(200),
    ("ibl-suppression", "GET"): admin_only(200),
    ("ibl-suppression", "DELETE"): admin_only(204),
    # Provider receipts: the provider's basic auth or signature is the credential (none sent here).
    ("email-receipts", "POST"): public(403),  # receipts are off without ANYMAIL_WEBHOOK_SECRET
    # -- templates, events, preferences, mentors -------------------------------------------------
    ("templates-list", "GET"): admin_only(200),
    ("templates-list", "POST"): admin_only(400),
    ("templates-channels", "GET"): admin_only(200),
    ("templates-spas", "GET"): admin_only(200),
    ("templates-detail", "GET"): admin_only(200),
    ("templates-detail", "PATCH"): admin_only(200),
    ("templates-detail", "DELETE"): admin_only(400),
    ("templates-toggle", "PATCH"): admin_only(400),
    ("templates-reset", "POST"): admin_only(200),
    ("templates-test", "POST"): admin_only(200),
    ("templates-preview", "POST"): admin_only(200),
    ("templates-events", "POST"): admin_only(400),
    ("templates-preferences", "GET"): owner_or_admin(200),
    ("templates-preferences", "PATCH"): owner_or_admin(400),
    ("templates-preferences", "DELETE"): owner_or_admin(200),
    ("templates-mentors", "GET"): admin_only(200),
    ("templates-mentors", "POST"): admin_only(400),
    ("templates-mentor", "GET"): admin_only(200),
    ("templates-mentor", "PATCH"): admin_only(200),
    ("templates-mentor", "DELETE"): admin_only(200),
    ("templates-activity", "GET"): admin_only(200),
    ("templates-activity", "POST"): admin_only(400),
    ("templates-digests", "GET"): admin_only(200),
    ("templates-frequency-caps", "GET"): admin_only(200),
    ("templates-frequency-cap", "GET"): admin_only(200),
    ("templates-frequency-cap", "PUT"): admin_only(400),  # a limit is required
    ("templates-frequency-cap", "DELETE"): admin_only(200),
    ("templates-unsubscribe", "GET"): public(404),  # the signed token is the credential; this one is bad
    ("templates-unsubscribe", "POST"): public(404),
    # -- builder -----------------------------------------------------------------------------------
    ("builder-list", "GET"): admin_only(200),
    ("builder-context", "GET"): admin_only(200),
    ("builder-validate-source", "POST"): admin_only(400),
    ("builder-preview", "POST"): admin_only(400),
    ("builder-send", "POST"): admin_only(400),
    ("builder-detail", "GET"): admin_only(200),
    ("builder-recipients", "GET"): admin_only(200),
    ("builder-cancel", "POST"): admin_only(200),
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
    own = PlatformProviderCredentials(platform=b, provider="africastalking", username="b-at")
    own.secret = "b-key"
    own.save()
    endpoint = WebhookEndpoint(platform=b, url="https://hooks.example.com/b", event_types=["delivery.sent"])
    endpoint.secret_set("whsec_" + "A" * 44)
    endpoint.save()
    message = WebhookMessage.objects.create(
        platform=b, endpoint=endpoint, event_type="delivery.sent", created_at=timezone.now()
    )
    suppression = Suppression.objects.create(
        platform=b, channel="email", address="gone@example.com", reason="hard_bounce", source="Postmark"
    )
    FrequencyCap.objects.create(platform=b, channel="sms", limit=3)
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
        "webhook_id": endpoint.pk,
        "message_id": str(message.pk),
        "token": "not-a-valid-unsubscribe-token",
        "path": "notification_images/missing.png",
        "suppression_id": suppression.pk,
        "provider": "africastalking",
        "channel": "sms",
    }
    return {"a": a, "b": b, "callers": callers, "kwargs": kwargs}


# Routes whose URL names the same keyword for something else.
ROUTE_KWARGS = {"email-receipts": {"provider": "postmark"}}


def _url(route: str, kwargs: dict) -> str:
    # Regex routes (`^media/(?P<path>.+)$`) and path routes (`<int:pk>`) alike.
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", route).strip("^$")
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(kwargs[m.group(1)]), route)


def _client(user, platform_key: str) -> APIClient:
    client = APIClient()
    if user is not None:
        _, raw = AuthToken.issue(user=user, name="matrix")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_PLATFORM=platform_key)
    else:
        client.credentials(HTTP_X_PLATFORM=platform_key)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "route", "method"), ROUTES, ids=[f"{m} {r}" for _, r, m in ROUTES])
def test_route_matrix(world, name, route, method):
    expected = dict(zip(CALLERS, EXPECTED[(name, method)], strict=True))
    url = _url(route, {**world["kwargs"], **ROUTE_KWARGS.get(name, {})})
    got = {}
    for caller in CALLERS:
        client = _client(world["callers"][caller], world["b"].key)
        # Each caller meets the same data: what one call changed is rolled back.
        with transaction.atomic():
            response = getattr(client, method.lower())(url, {}, format="json")
            transaction.set_rollback(True)
        assert response.status_code != 500, (caller, method, url)
        got[caller] = response.status_code
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


PUBLIC_ROUTES = {
    "healthz",
    "auth-token",
    "schema",
    "swagger-ui",
    "templates-unsubscribe",
    "metrics",
    "media",
    # A provider's callback: it names a provider message id, no caller or platform.
    "v1-africastalking-delivery-reports",
    "v1-afromessage-status-reports",
    "email-receipts",
}
# The learner's own pages: Django's session sign-in, no API view; the only token
# they hand out is an inbox token of the signed-in user (test_inbox_page.py).
SESSION_PAGES = {"inbox", "inbox-login", "inbox-logout", "inbox-token"}


def test_every_api_view_authorises_through_the_one_family():
    """No view falls back to the default IsAuthenticated or a permission class of its own kind."""
    from notifications.api.permissions import PlatformPermission

    callbacks = {entry.name: entry.callback for _, entry in _walk(get_resolver("config.urls").url_patterns)}
    for name, _, method in ROUTES:
        if name in PUBLIC_ROUTES | SESSION_PAGES:
            continue
        cls = callbacks[name].view_class
        view = cls()
        view.request = type("Request", (), {"method": method})()
        view.kwargs = {}
        classes = [type(p) for p in view.get_permissions()]
        assert classes and all(issubclass(c, PlatformPermission) for c in classes), (name, method, classes)

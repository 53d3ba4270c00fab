"""Inbox tokens: issued to a platform's backend, scoped to one user's inbox on one platform.

Also the single mark-read / dismiss / read-all endpoints they use, CORS for the
platform's origins, and the WebSocket rules for scoped sockets.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.views import APIView

from notifications import inbox
from notifications.inbox_tokens import inbox_token_issue, tokens_revoke
from notifications.models import AuthToken, InboxStatus, Notification, TokenScope
from notifications.pipeline import Message, Recipient, notification_send
from notifications.tests.factories import PlatformFactory, make_member

pytestmark = pytest.mark.django_db

V1 = "/api/v1/notifications"
ORIGIN = "https://learn.acme.example"


def _send(platform, users, source, title="Hello"):
    notification_send(
        platform=platform,
        source=source,
        channels=["in_app"],
        recipients=[Recipient(user_id=u.pk) for u in users],
        message=Message(title=title, body=f"Body of {title}"),
    )
    return list(Notification.objects.filter(source=source).order_by("user_id").values_list("id", flat=True))


def _scoped(raw: str, **headers) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}", **headers)
    return client


@pytest.fixture
def backend(make_user, api):
    """The platform's backend: a service account with the ADMIN role."""
    return api(make_user("lms-backend", role="ADMIN", is_service_account=True))


def test_a_service_account_gets_a_short_lived_token_for_one_member(backend, make_user, platform, settings):
    learner = make_user("learner")
    r = backend.post("/api/v1/inbox-tokens", {"user_id": learner.pk}, format="json")
    assert r.status_code == 201, r.content
    data = r.json()["data"]
    assert (data["user_id"], data["platform"], data["expires_in"]) == (learner.pk, platform.key, 900)
    token = AuthToken.objects.get(prefix=data["token"][:8])
    assert (token.user, token.platform, token.scope) == (learner, platform, TokenScope.INBOX)
    assert timedelta(minutes=14) < token.expires_at - timezone.now() <= timedelta(minutes=15)
    # By username as well; the TTL is a setting.
    settings.INBOX_TOKEN_TTL_SECONDS = 60
    r = backend.post("/api/v1/inbox-tokens", {"username": "learner"}, format="json")
    assert r.status_code == 201 and r.json()["data"]["expires_in"] == 60


@pytest.mark.parametrize(
    "body", [{}, {"user_id": 1, "username": "x"}, {"user_id": "abc"}, {"user_id": -1}, {"username": "x" * 151}]
)
def test_bad_token_requests_are_400_in_the_v1_format(backend, body):
    r = backend.post("/api/v1/inbox-tokens", body, format="json")
    assert r.status_code == 400 and set(r.json()) == {"message", "error"}
    assert not AuthToken.objects.filter(scope=TokenScope.INBOX).exists()


def test_only_members_of_the_callers_platform_and_only_with_the_permission(backend, make_user, api):
    stranger = make_member(platform=PlatformFactory(key="other"), username="stranger")
    r = backend.post("/api/v1/inbox-tokens", {"user_id": stranger.pk}, format="json")
    assert r.status_code == 404
    r = backend.post("/api/v1/inbox-tokens", {"username": "nobody"}, format="json")
    assert r.status_code == 404
    learner = make_user("learner")
    r = api(learner).post("/api/v1/inbox-tokens", {"user_id": learner.pk}, format="json")
    assert r.status_code == 403
    assert not AuthToken.objects.filter(scope=TokenScope.INBOX).exists()


def test_the_scoped_token_reads_marks_and_dismisses_its_own_inbox(make_user, platform):
    jane, bob = make_user("jane"), make_user("bob")
    first = _send(platform, [jane, bob], "bulk:one", "First")
    second = _send(platform, [jane], "bulk:two", "Second")[0]
    jane_first = first[0] if Notification.objects.get(pk=first[0]).user == jane else first[1]
    bob_first = first[1] if jane_first == first[0] else first[0]
    _, raw = inbox_token_issue(user=jane, platform=platform)
    client = _scoped(raw)

    r = client.get(V1)
    assert r.status_code == 200
    assert [n["payload"]["headline"] for n in r.json()["data"]["notifications"]] == ["Second", "First"]
    assert client.get(f"{V1}/unread").json()["data"] == {"unread": 2}

    r = client.post(f"{V1}/{second}/read")
    assert r.status_code == 200
    assert r.json()["data"] == {"id": str(second), "status": "READ", "unread": 1}
    assert Notification.objects.get(pk=second).status == InboxStatus.READ
    unread_only = client.get(V1, {"status": "unread"}).json()["data"]
    assert [n["id"] for n in unread_only["notifications"]] == [str(jane_first)]
    assert unread_only["total_count"] == 1

    r = client.post(f"{V1}/{jane_first}/dismiss")
    assert r.json()["data"] == {"id": str(jane_first), "status": "CANCELLED", "unread": 0}
    assert [n["id"] for n in client.get(V1).json()["data"]["notifications"]] == [str(second)]
    # Dismissed is final; another user's notification is one that does not exist.
    r = client.post(f"{V1}/{jane_first}/read")
    assert r.status_code == 409 and set(r.json()) == {"message", "error"}
    for missing in (bob_first, uuid.uuid4()):
        assert client.post(f"{V1}/{missing}/read").status_code == 404
        assert client.post(f"{V1}/{missing}/dismiss").status_code == 404
    assert Notification.objects.get(pk=bob_first).status == InboxStatus.UNREAD
    assert client.get(V1, {"status": "read"}).status_code == 400


def test_pages_by_cursor_neither_skip_nor_repeat_when_rows_arrive_or_leave(make_user, platform, api):
    jane = make_user("jane")
    for i in range(5):
        _send(platform, [jane], f"bulk:{i}", f"N{i}")
    client = api(jane)
    first = client.get(V1, {"limit": 2}).json()["data"]["notifications"]
    assert [n["payload"]["headline"] for n in first] == ["N4", "N3"]
    _send(platform, [jane], "bulk:new", "New")  # arrives meanwhile
    client.post(f"{V1}/{first[1]['id']}/dismiss")  # the cursor row itself leaves the list
    page = client.get(V1, {"limit": 2, "before": first[1]["id"]}).json()["data"]["notifications"]
    assert [n["payload"]["headline"] for n in page] == ["N2", "N1"]
    client.post(f"{V1}/{page[0]['id']}/read")
    unread = client.get(V1, {"limit": 5, "before": page[0]["id"], "status": "unread"}).json()["data"]
    assert [n["payload"]["headline"] for n in unread["notifications"]] == ["N1", "N0"]
    for bad in ("nope", str(uuid.uuid4())):
        r = client.get(V1, {"before": bad})
        assert r.status_code == 400 and set(r.json()) == {"message", "error"}


def test_read_all_marks_every_unread_of_the_inbox(make_user, platform, api):
    jane, bob = make_user("jane"), make_user("bob")
    _send(platform, [jane, bob], "bulk:a", "A")
    _send(platform, [jane], "bulk:b", "B")
    r = api(jane).post(f"{V1}/read-all")
    assert r.status_code == 200 and r.json()["data"] == {"count": 2, "unread": 0}
    assert api(jane).post(f"{V1}/read-all").json()["data"] == {"count": 0, "unread": 0}
    assert api(bob).get(f"{V1}/unread").json()["data"] == {"unread": 1}


def _drf_routes():
    """(path, view class) of every DRF view the project routes, with sample path values."""
    samples = {"int": "1", "id": "1", "uuid": str(uuid.uuid4()), "path": "x"}
    samples["str"] = samples["slug"] = "acme-learning"

    def walk(patterns, prefix):
        for p in patterns:
            route = str(p.pattern)
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + route)
            elif isinstance(p, URLPattern) and getattr(p.callback, "cls", None):
                if not issubclass(p.callback.cls, APIView):
                    continue
                path = re.sub(r"<(?:(\w+):)?\w+>", lambda m: samples[m.group(1) or "str"], prefix + route)
                yield "/" + path.lstrip("^").rstrip("$"), p.callback.cls

    return list(walk(get_resolver().url_patterns, ""))


def test_every_other_endpoint_answers_an_inbox_token_403(make_user, platform):
    jane = make_user("jane", role="SUPER_ADMIN", admin=True)  # holds every key: only the scope can refuse
    _, raw = inbox_token_issue(user=jane, platform=platform)
    client = _scoped(raw)
    routes = _drf_routes()
    assert len(routes) > 30
    allowed = set()
    for path, view in routes:
        if view.authentication_classes == []:  # the password exchange takes no token at all
            continue
        scoped = TokenScope.INBOX in getattr(view, "token_scopes", ())
        for method in ("get", "post", "put", "patch", "delete"):
            if not hasattr(view, method):
                continue
            status = getattr(client, method)(path, {}, format="json").status_code
            if scoped:
                allowed.add(path.split("/")[-1])
                assert status != 403, (method, path)
            else:
                assert status == 403, (method, path, status)
    # The inbox endpoints, and nothing else.
    assert {p for p, v in routes if TokenScope.INBOX in getattr(v, "token_scopes", ())} == {
        V1,
        f"{V1}/unread",
        f"{V1}/read-all",
        *(p for p, _ in routes if p.endswith(("/read", "/dismiss")) and p.startswith(V1 + "/")),
    }
    # The bulk sends, explicitly: nothing was sent.
    for channel in ("sms", "email", "push", "in-app"):
        r = client.post(f"{V1}/bulk-{channel}", {"message": "x", "user_ids": [jane.pk]}, format="json")
        assert r.status_code == 403
    assert not Notification.objects.exists()


def test_the_token_cannot_reach_another_users_inbox_nor_another_platform(make_user, platform):
    jane, bob = make_user("jane"), make_user("bob")
    other = PlatformFactory(key="other")
    make_member(platform=other, username="jane")
    _send(platform, [bob], "bulk:bob", "For Bob")
    _send(other, [jane], "bulk:other", "Elsewhere")
    _, raw = inbox_token_issue(user=jane, platform=platform)
    client = _scoped(raw)
    # Jane belongs to two platforms; the token names one, no header needed.
    r = client.get(V1)
    assert r.status_code == 200 and r.json()["data"]["notifications"] == []
    assert _scoped(raw, HTTP_X_PLATFORM="other").get(V1).status_code == 404
    # The IBL path naming Bob's inbox is not an inbox-token endpoint.
    r = client.get(f"/api/notification/v1/orgs/{platform.key}/users/bob/notifications/")
    assert r.status_code == 403
    # A membership that ends ends the token's use.
    jane.memberships.filter(platform=platform).update(is_active=False)
    assert client.get(V1).status_code == 404


def test_expired_and_revoked_tokens_are_401(make_user, platform):
    jane = make_user("jane")
    token, raw = inbox_token_issue(user=jane, platform=platform, ttl_seconds=60)
    assert _scoped(raw).get(V1).status_code == 200
    AuthToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _scoped(raw).get(V1).status_code == 401
    token2, raw2 = inbox_token_issue(user=jane, platform=platform)
    assert tokens_revoke(token_ids=[token2.pk], user=jane) == 1
    assert _scoped(raw2).get(V1).status_code == 401


def test_ended_inbox_tokens_are_purged_and_other_tokens_kept(make_user, platform):
    from notifications.tasks import purge_inbox_tokens

    jane = make_user("jane")
    old = timezone.now() - timedelta(days=2)
    expired, _ = inbox_token_issue(user=jane, platform=platform)
    revoked, _ = inbox_token_issue(user=jane, platform=platform)
    fresh, _ = inbox_token_issue(user=jane, platform=platform)
    device, _ = AuthToken.issue(user=jane, name="phone")
    AuthToken.objects.filter(pk__in=[expired.pk, device.pk]).update(expires_at=old)
    AuthToken.objects.filter(pk=revoked.pk).update(revoked_at=old)
    assert purge_inbox_tokens() == 2
    assert set(AuthToken.objects.values_list("pk", flat=True)) == {fresh.pk, device.pk}


def test_browser_origins_cors_and_origin_check(make_user, platform, api):
    platform.allowed_origins = f"{ORIGIN}/\nhttps://second.example"
    platform.save()
    jane = make_user("jane")
    _, raw = inbox_token_issue(user=jane, platform=platform)
    # Preflight from a listed origin, on an inbox endpoint.
    preflight = {
        "HTTP_ORIGIN": ORIGIN,
        "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST",
        "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "authorization",
    }
    r = APIClient().options(f"{V1}/{uuid.uuid4()}/read", **preflight)
    assert r.status_code == 200 and r["Access-Control-Allow-Origin"] == ORIGIN
    assert "authorization" in r["Access-Control-Allow-Headers"]
    # Not for other origins, nor for the other endpoints.
    r = APIClient().options(V1, **{**preflight, "HTTP_ORIGIN": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r
    r = APIClient().options(f"{V1}/bulk-in-app", **preflight)
    assert "Access-Control-Allow-Origin" not in r
    r = APIClient().options("/api/v1/inbox-tokens", **preflight)
    assert "Access-Control-Allow-Origin" not in r

    r = _scoped(raw, HTTP_ORIGIN=ORIGIN).get(V1)
    assert r.status_code == 200 and r["Access-Control-Allow-Origin"] == ORIGIN
    # A listed origin of another platform, or an unlisted one: refused.
    other = PlatformFactory(key="other", allowed_origins="https://other.example")
    assert other.origin_list == ["https://other.example"]
    assert _scoped(raw, HTTP_ORIGIN="https://other.example").get(V1).status_code == 403
    assert _scoped(raw, HTTP_ORIGIN="https://evil.example").get(V1).status_code == 403
    # Our own pages may use it.
    assert _scoped(raw, HTTP_ORIGIN="http://testserver").get(V1).status_code == 200


# -- WebSocket -------------------------------------------------------------------


def _socket(raw: str, origin: str | None = "http://testserver"):
    from config.asgi import application

    headers = [(b"host", b"testserver")]
    if origin:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(application, f"/api/v1/ws/connect?token={raw}", headers=headers)


@pytest.mark.django_db(transaction=True)
def test_scoped_sockets_origins_platform_filter_status_events_and_revocation(make_user, platform):
    platform.allowed_origins = ORIGIN
    platform.save()
    other = PlatformFactory(key="other", allowed_origins="https://other.example")
    jane = make_user("jane")
    make_member(platform=other, username="jane")
    token, raw = inbox_token_issue(user=jane, platform=platform)
    _, full = AuthToken.issue(user=jane)

    async def refused(raw_token, origin):
        socket = _socket(raw_token, origin)
        connected, _ = await socket.connect()
        await socket.disconnect()
        return not connected

    async def scenario():
        # Foreign origins: only the scoped token of the platform listing it.
        assert await refused(raw, "https://evil.example")
        assert await refused(raw, "https://other.example")
        assert await refused(full, ORIGIN)
        socket = _socket(raw, ORIGIN)
        assert (await socket.connect())[0]
        # Another platform's notification is not this socket's business.
        await database_sync_to_async(_send)(other, [jane], "bulk:elsewhere", "Elsewhere")
        await database_sync_to_async(_send)(platform, [jane], "bulk:here", "Here")
        event = await socket.receive_json_from(timeout=5)
        assert event["type"] == "CREATED_NOTIFICATION" and event["payload"]["payload"]["headline"] == "Here"
        assert await socket.receive_nothing(timeout=0.3)
        # A status change made elsewhere (another tab, the IBL API) reaches it.
        notification_id = event["payload"]["id"]
        await database_sync_to_async(inbox.inbox_status_set)(
            user=jane, platform=platform, ids=[uuid.UUID(notification_id)], status=InboxStatus.READ
        )
        assert await socket.receive_json_from(timeout=5) == {
            "type": "INBOX_UPDATED",
            "platform": platform.key,
            "ids": [notification_id],
            "status": "READ",
            "unread": 0,
        }
        await database_sync_to_async(inbox.inbox_mark_all_read)(user=jane, platform=other)
        assert await socket.receive_nothing(timeout=0.3)  # the other platform's change
        # Revoking the token closes its socket.
        await database_sync_to_async(tokens_revoke)(token_ids=[token.pk], user=jane)
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_a_socket_closes_when_its_token_expires(make_user, platform):
    jane = make_user("jane")
    _, raw = inbox_token_issue(user=jane, platform=platform, ttl_seconds=1)

    async def scenario():
        socket = _socket(raw)
        assert (await socket.connect())[0]
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}

    async_to_sync(scenario)()


@pytest.mark.parametrize(
    "value",
    ["learn.example.com", "ftp://learn.example.com", "https://learn.example.com/inbox", "https://x.example:99999"],
)
def test_allowed_origins_are_origins(platform, value):
    from django.core.exceptions import ValidationError

    platform.allowed_origins = f"https://ok.example\n{value}"
    with pytest.raises(ValidationError):
        platform.full_clean()


def test_allowed_origins_accept_origins_with_ports_and_trailing_slashes(platform):
    platform.allowed_origins = "https://Learn.Example.com/\nhttp://127.0.0.2:8080"
    platform.full_clean()
    assert platform.origin_list == ["https://learn.example.com", "http://127.0.0.2:8080"]

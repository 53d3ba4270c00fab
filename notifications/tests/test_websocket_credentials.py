"""Open WebSockets end with their credentials: a real uvicorn server and the `websockets` client.

Close codes: 4401 when the token is revoked or expires or the user is
deactivated, 4403 when the membership on the socket's platform ends.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from notifications.credentials import tokens_revoke
from notifications.models import AuthToken, Membership, Role
from notifications.pipeline import Message, Recipient, notification_send
from notifications.tests.factories import PlatformFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _ws(live_url: str, token: str, platform: str | None = None) -> str:
    url = live_url.replace("http", "ws", 1) + f"/api/v1/ws/connect?token={token}"
    return url + (f"&platform={platform}" if platform else "")


def _send(platform, user, title: str) -> None:
    result = notification_send(
        platform=platform,
        source=f"bulk:{title}",
        channels=["in_app"],
        recipients=[Recipient(user_id=user.pk)],
        message=Message(title=title, body="body"),
    )
    assert result.sent == 1


def _titles_until_closed(ws, *, within: float) -> tuple[list[str], int, float]:
    """Everything the socket receives until it closes: (titles, close code, seconds it took)."""
    start = time.monotonic()
    titles = []
    try:
        while True:
            event = json.loads(ws.recv(timeout=within))
            titles.append(event["payload"]["payload"]["headline"])
    except ConnectionClosed as closed:
        return titles, closed.rcvd.code if closed.rcvd else None, time.monotonic() - start
    except TimeoutError:
        pytest.fail(f"socket still open after {within} s; received {titles}")


def _first(ws) -> str:
    return json.loads(ws.recv(timeout=10))["payload"]["payload"]["headline"]


def test_a_revoked_token_closes_its_socket_at_once_and_nothing_follows(live_url, platform, make_user):
    jane = make_user("jane")
    token, raw = AuthToken.issue(user=jane, name="phone")
    _, other_raw = AuthToken.issue(user=jane, name="laptop")
    with connect(_ws(live_url, raw)) as phone, connect(_ws(live_url, other_raw)) as laptop:
        _send(platform, jane, "before")
        assert _first(phone) == "before" and _first(laptop) == "before"
        tokens_revoke(tokens=AuthToken.objects.filter(pk=token.pk))
        _send(platform, jane, "after")
        titles, code, took = _titles_until_closed(phone, within=5)
        assert (titles, code) == ([], 4401) and took < 5
        # The user's other token is untouched.
        assert _first(laptop) == "after"
    with pytest.raises(InvalidStatus):
        connect(_ws(live_url, raw))


def test_an_expired_token_closes_its_socket(live_url, platform, make_user):
    jane = make_user("jane")
    _, raw = AuthToken.issue(user=jane, name="short", ttl=timedelta(seconds=2))
    with connect(_ws(live_url, raw)) as ws:
        _send(platform, jane, "in time")
        assert _first(ws) == "in time"
        titles, code, took = _titles_until_closed(ws, within=7)
        # The token had at most 2 s left: the consumer closes the socket when it runs out.
        assert (titles, code) == ([], 4401) and took < 5
    _send(platform, jane, "too late")  # nobody is listening any more; nothing breaks


def test_a_revoke_that_bypasses_the_service_is_caught_by_the_recheck(live_url, platform, make_user):
    """A raw UPDATE tells no socket; the consumer's own check (every 2 s) closes it."""
    from django.utils import timezone

    jane = make_user("jane")
    token, raw = AuthToken.issue(user=jane)
    with connect(_ws(live_url, raw)) as ws:
        AuthToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        titles, code, took = _titles_until_closed(ws, within=5)
        assert (titles, code) == ([], 4401) and took < 5


def test_ending_the_membership_closes_the_socket_with_4403(live_url, platform, make_user):
    jane, bob = make_user("jane"), make_user("bob")
    _, jane_raw = AuthToken.issue(user=jane)
    _, bob_raw = AuthToken.issue(user=bob)
    with connect(_ws(live_url, jane_raw)) as jane_ws, connect(_ws(live_url, bob_raw)) as bob_ws:
        membership = Membership.objects.get(user=jane, platform=platform)
        membership.is_active = False
        membership.save()
        _send(platform, jane, "after")
        titles, code, took = _titles_until_closed(jane_ws, within=5)
        assert (titles, code) == ([], 4403) and took < 5
        Membership.objects.get(user=bob, platform=platform).delete()
        titles, code, took = _titles_until_closed(bob_ws, within=5)
        assert (titles, code) == ([], 4403) and took < 5


def test_deactivating_the_user_closes_every_socket_with_4401(live_url, platform, make_user):
    jane = make_user("jane")
    _, raw = AuthToken.issue(user=jane)
    _, raw2 = AuthToken.issue(user=jane)
    with connect(_ws(live_url, raw)) as one, connect(_ws(live_url, raw2)) as two:
        jane.is_active = False
        jane.save()
        for ws in (one, two):
            titles, code, took = _titles_until_closed(ws, within=5)
            assert (titles, code) == ([], 4401) and took < 5


def test_a_socket_serves_one_platform(live_url, platform, make_user):
    other = PlatformFactory(key="other-school")
    jane = make_user("jane")
    Membership.objects.create(user=jane, platform=other, role=Role.ADMIN)
    _, raw = AuthToken.issue(user=jane)
    # Two platforms and none named: refused, as the REST surfaces answer 400.
    with pytest.raises(InvalidStatus):
        connect(_ws(live_url, raw))
    with pytest.raises(InvalidStatus):
        connect(_ws(live_url, raw, platform="no-such-platform"))
    with connect(_ws(live_url, raw, platform=other.key)) as ws:
        _send(platform, jane, "acme")
        _send(other, jane, "other")
        assert _first(ws) == "other"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)


def test_a_handshake_reads_the_cached_credentials_and_decides_as_the_database_would(
    platform, make_user, django_assert_num_queries
):
    """After an API call with the token, its handshake needs no query; every answer is the database's."""
    from rest_framework.test import APIClient

    from notifications.consumers import _authorise_many_sync
    from notifications.inbox_tokens import inbox_token_issue

    other = PlatformFactory(key="other-school", allowed_origins="https://learn.other.example")
    jane = make_user("jane")
    both = make_user("both")
    Membership.objects.create(user=both, platform=other, role=Role.STUDENT)
    _, jane_raw = AuthToken.issue(user=jane)
    _, both_raw = AuthToken.issue(user=both)
    _, inbox_raw = inbox_token_issue(user=both, platform=other)
    requests = [
        (jane_raw, "", ""),  # her only platform
        (jane_raw, platform.key, ""),
        (jane_raw, other.key, ""),  # not hers
        (jane_raw, "no-such-school", ""),
        (both_raw, "", ""),  # two platforms, none named
        (both_raw, other.key, ""),
        (both_raw, "", "https://evil.example"),  # a full token in another site's page
        (inbox_raw, "", "https://learn.other.example"),  # an origin its platform lists
        (inbox_raw, "", "https://evil.example"),
        (inbox_raw, platform.key, ""),  # an inbox token serves its own platform only
        ("not-a-token", "", ""),
    ]

    def answers():
        grants = _authorise_many_sync(requests)
        return [None if grant is None else (grant.user.pk, grant.platform_id) for grant in grants]

    from_database = answers()
    assert from_database == [
        (jane.pk, platform.pk),
        (jane.pk, platform.pk),
        None,
        None,
        None,
        (both.pk, other.pk),
        None,
        (both.pk, other.pk),
        None,
        None,
        None,
    ]
    for raw in (jane_raw, both_raw, inbox_raw):  # the API caches each token's credentials
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.get("/api/v1/notifications")
    with django_assert_num_queries(1):  # only the token that is none: the cache cannot know it
        assert answers() == from_database

"""The WebSocket handshake's authorisation: one query, the same answers as `platform_permissions`."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.consumers import WS_CONNECT, _authorise_sync
from notifications.inbox_tokens import inbox_token_issue
from notifications.models import AuthToken, Role
from notifications.permissions import platform_permissions
from notifications.tests.factories import PlatformFactory, UserFactory, make_member

pytestmark = pytest.mark.django_db


def _authorise(raw, wanted="", origin=""):
    """Run it twice: the first call may stamp the token's last_used_at."""
    _authorise_sync(raw, wanted, origin)
    with CaptureQueriesContext(connection) as queries:
        grant = _authorise_sync(raw, wanted, origin)
    return grant, len(queries)


def test_a_connect_costs_one_query(platform, make_user):
    jane = make_user("jane")
    _, raw = AuthToken.issue(user=jane)
    grant, queries = _authorise(raw)
    assert (grant.user, grant.platform_id, queries) == (jane, platform.pk, 1)
    grant, queries = _authorise(raw, wanted=platform.key)
    assert (grant.platform_id, queries) == (platform.pk, 1)
    _, inbox_raw = inbox_token_issue(user=jane, platform=platform)
    grant, queries = _authorise(inbox_raw)
    assert (grant.platform_id, queries) == (platform.pk, 1)


def test_the_platform_rules_hold(platform, make_user):
    other = PlatformFactory(key="other-school")
    jane = make_user("jane")
    _, raw = AuthToken.issue(user=jane)
    assert _authorise(raw, wanted=other.key)[0] is None  # not a member there
    assert _authorise(raw, wanted="no-such-platform")[0] is None
    make_member(platform=other, username="jane")
    assert _authorise(raw)[0] is None  # two platforms, none named
    assert _authorise(raw, wanted=other.key)[0].platform_id == other.pk
    _, inbox_raw = inbox_token_issue(user=jane, platform=platform)
    assert _authorise(inbox_raw)[0].platform_id == platform.pk  # its own platform, although jane has two
    assert _authorise(inbox_raw, wanted=other.key)[0] is None
    jane.memberships.filter(platform=other).update(is_active=False)
    assert _authorise(raw, wanted=other.key)[0] is None
    assert _authorise(raw)[0].platform_id == platform.pk  # one active membership left
    other.is_active = False
    other.save(update_fields=["is_active"])
    jane.memberships.filter(platform=other).update(is_active=True)
    assert _authorise(raw)[0].platform_id == platform.pk  # an inactive platform does not count
    platform.is_active = False
    platform.save(update_fields=["is_active"])
    assert _authorise(inbox_raw)[0] is None
    assert _authorise(raw)[0] is None


def test_superusers_and_the_answer_of_the_one_authorisation_path(platform, make_user):
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    _, raw = AuthToken.issue(user=root)
    assert _authorise(raw)[0] is None  # no membership, no platform named
    grant = _authorise(raw, wanted=platform.key)[0]
    assert grant.platform_id == platform.pk
    assert WS_CONNECT in platform_permissions(root, platform)
    for role in Role.values:
        user = make_user(f"user-{role.lower()}", role=role)
        _, token = AuthToken.issue(user=user)
        assert (_authorise(token)[0] is not None) == (WS_CONNECT in platform_permissions(user, platform))
    ghost = make_user("ghost")
    _, token = AuthToken.issue(user=ghost)
    ghost.is_active = False
    ghost.save(update_fields=["is_active"])
    assert _authorise(token)[0] is None


def test_the_periodic_recheck_answers_for_all_sockets_at_once(platform, make_user):
    from django.utils import timezone

    from notifications.consumers import _close_codes

    check = _close_codes.func
    other = PlatformFactory(key="other-school")
    jane, bob, carol = make_user("jane"), make_user("bob"), make_user("carol")
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    raws = {user: AuthToken.issue(user=user)[1] for user in (jane, bob, carol, root)}
    grants = {user: _authorise(raws[user], wanted=platform.key)[0] for user in (jane, bob, carol, root)}
    assert check(list(grants.values())) == {}  # all may stay
    # Behind the services' back: a raw revoke, a raw membership end, a deactivated user.
    AuthToken.objects.filter(user=jane).update(revoked_at=timezone.now())
    bob.memberships.update(is_active=False)
    type(carol).objects.filter(pk=carol.pk).update(is_active=False)
    make_member(platform=other, username="bob")  # another platform's membership does not count
    with CaptureQueriesContext(connection) as queries:
        codes = check(list(grants.values()))
    assert len(queries) == 2
    key = lambda user: (grants[user].token_id, grants[user].platform_id)  # noqa: E731
    assert codes == {key(jane): 4401, key(bob): 4403, key(carol): 4401}  # the superuser stays


@pytest.mark.django_db(transaction=True)
def test_handshakes_arriving_within_the_wait_share_one_lookup(platform, make_user, monkeypatch):
    """The first handshake of a batch waits HANDSHAKE_WAIT for others: a wave of connects is a few lookups."""
    import asyncio

    from asgiref.sync import async_to_sync

    from notifications import consumers

    raws = [AuthToken.issue(user=make_user(f"user{i}"))[1] for i in range(5)]
    lookups = []
    authorise_many = consumers._authorise_many

    async def counted(requests):
        lookups.append(len(requests))
        return await authorise_many(requests)

    monkeypatch.setattr(consumers, "_authorise_many", counted)
    # Long enough that handshakes a few event-loop turns apart surely fall within it.
    monkeypatch.setattr(consumers, "HANDSHAKE_WAIT", 1.0)

    async def scenario():
        async def handshake(turns, raw):
            for _ in range(turns):
                await asyncio.sleep(0)
            return await consumers._Handshakes.authorise(raw, "", "")

        return await asyncio.gather(*(handshake(i, raw) for i, raw in enumerate([*raws, "not-a-token"])))

    grants = async_to_sync(scenario)()
    assert lookups == [6]
    assert [grant.platform_id if grant else None for grant in grants] == [platform.pk] * 5 + [None]

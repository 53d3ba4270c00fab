"""The cached credentials of the request path: one lookup per request, and no stale right.

Each test warms the cache with a request, changes something through the ORM,
and asserts the very next request with the same token sees the change.
"""

from __future__ import annotations

import pytest
import redis.connection
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.credentials import tokens_revoke
from notifications.models import AuthToken, Membership, Platform, User
from notifications.tests.factories import PlatformFactory, make_member

pytestmark = pytest.mark.django_db

INBOX = "/api/v1/notifications"
UNREAD = "/api/v1/notifications/unread"
SCHEDULED = "/api/v1/notifications/scheduled"  # needs notifications_scheduled.list (the ADMIN bundle)
CONFIG = "/api/notification/v1/platforms/acme-learning/config/smtp/"  # platform admins only


def _warm(client, path=UNREAD, status=200):
    assert client.get(path).status_code == status
    assert client.get(path).status_code == status  # served from the cache


def _credential_queries(queries) -> list[str]:
    tables = ("notifications_authtoken", "notifications_membership", "notifications_platform", "notifications_user")
    return [q["sql"] for q in queries if any(f'"{t}"' in q["sql"].split(" WHERE ")[0] for t in tables)]


def test_a_warm_request_reads_no_credentials_from_the_database(make_user, api):
    client = api(make_user("jane"))
    with CaptureQueriesContext(connection) as cold:
        assert client.get(UNREAD).status_code == 200
    with CaptureQueriesContext(connection) as warm:
        assert client.get(UNREAD).status_code == 200
    assert _credential_queries(cold.captured_queries)  # built once ...
    assert _credential_queries(warm.captured_queries) == []  # ... then read from the cache


def test_a_warm_request_costs_two_redis_round_trips(make_user, api, monkeypatch):
    """One GET of the credentials, one script for every rate limit."""
    client = api(make_user("jane"))
    assert client.get(UNREAD).status_code == 200
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    assert client.get(UNREAD).status_code == 200
    assert len(sent) == 2


def test_revoke_takes_effect_on_the_next_request(make_user, api):
    jane = make_user("jane")
    phone, laptop = api(jane), api(jane)
    _warm(phone)
    _warm(laptop)
    tokens_revoke(tokens=AuthToken.objects.filter(user=jane, prefix=phone.raw_token[:8]))
    assert phone.get(UNREAD).status_code == 401
    assert laptop.get(UNREAD).status_code == 200
    tokens_revoke(tokens=AuthToken.objects.filter(user=jane))
    assert laptop.get(UNREAD).status_code == 401


def test_a_raw_queryset_revoke_or_expiry_takes_effect_on_the_next_request(make_user, api):
    jane = make_user("jane")
    client = api(jane)
    _warm(client)
    AuthToken.objects.filter(user=jane).update(revoked_at="2020-01-01T00:00:00Z")
    assert client.get(UNREAD).status_code == 401


def test_role_change_takes_effect_on_the_next_request(make_user, api, platform):
    jane = make_user("jane", role="STUDENT")
    client = api(jane)
    _warm(client, SCHEDULED, 403)
    membership = Membership.objects.get(user=jane, platform=platform)
    membership.role = "ADMIN"
    membership.save()
    assert client.get(SCHEDULED).status_code == 200
    _warm(client, SCHEDULED, 200)
    Membership.objects.filter(pk=membership.pk).update(role="STUDENT")  # the queryset path too
    assert client.get(SCHEDULED).status_code == 403


def test_platform_admin_flag_and_grants_take_effect_on_the_next_request(make_user, api, platform):
    jane = make_user("jane", admin=True)
    client = api(jane)
    _warm(client, CONFIG, 200)
    Membership.objects.filter(user=jane).update(is_platform_admin=False)
    assert client.get(CONFIG).status_code == 403

    bob = make_user("bob")
    bob_client = api(bob)
    _warm(bob_client, SCHEDULED, 403)
    membership = bob.memberships.get()
    perm = Permission.objects.get(codename="scheduled_list")
    membership.permissions.add(perm)
    assert bob_client.get(SCHEDULED).status_code == 200
    _warm(bob_client, SCHEDULED, 200)
    membership.permissions.remove(perm)
    assert bob_client.get(SCHEDULED).status_code == 403


def test_membership_removal_takes_effect_on_the_next_request(make_user, api, platform):
    jane, bob = make_user("jane"), make_user("bob")
    jane_client, bob_client = api(jane), api(bob)
    _warm(jane_client)
    _warm(bob_client)
    Membership.objects.get(user=jane, platform=platform).delete()
    assert jane_client.get(UNREAD).status_code == 403  # "This user belongs to no platform"
    membership = Membership.objects.get(user=bob, platform=platform)
    membership.is_active = False
    membership.save()
    assert bob_client.get(UNREAD).status_code == 403


def test_a_new_membership_takes_effect_on_the_next_request(make_user, api, platform):
    jane = make_user("jane")
    client = api(jane)
    other = PlatformFactory(key="other")
    _warm(client)
    assert client.get(UNREAD, HTTP_X_PLATFORM="other").status_code == 404
    make_member(platform=other, username="jane")
    assert client.get(UNREAD, HTTP_X_PLATFORM="other").status_code == 200
    assert client.get(UNREAD).status_code == 400  # now ambiguous without the header


def test_user_deactivation_and_platform_deactivation_take_effect_on_the_next_request(make_user, api, platform):
    jane, bob = make_user("jane"), make_user("bob")
    jane_client, bob_client = api(jane), api(bob)
    _warm(jane_client)
    _warm(bob_client)
    jane.is_active = False
    jane.save()
    assert jane_client.get(UNREAD).status_code == 401
    platform = Platform.objects.get(pk=platform.pk)
    platform.is_active = False
    platform.save()
    assert bob_client.get(UNREAD).status_code == 403


def test_user_deletion_takes_effect_on_the_next_request(make_user, api):
    jane = make_user("jane")
    client = api(jane)
    _warm(client)
    User.objects.filter(pk=jane.pk).delete()
    assert client.get(UNREAD).status_code == 401


def test_cache_off_reads_every_time(make_user, api, settings):
    settings.AUTH_CACHE_SECONDS = 0
    client = api(make_user("jane"))
    assert client.get(INBOX).status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(INBOX).status_code == 200
    assert _credential_queries(ctx.captured_queries)

"""Project-wide fixtures: tenants, users with tokens, API clients per header keyword."""

from __future__ import annotations

import pytest

from config import embedded_redis


def pytest_unconfigure(config):
    # A plain `pytest` without REDIS_URL started the embedded server through
    # the settings; leave no process behind.
    if embedded_redis.started_here:
        embedded_redis.stop()


@pytest.fixture(autouse=True)
def _clean_state(settings):
    from django.core.cache import cache

    from notifications.backends import locmem

    locmem.reset()
    yield
    cache.clear()


@pytest.fixture
def platform(db):
    from notifications.tests.factories import PlatformFactory

    return PlatformFactory(key="acme-learning")


@pytest.fixture
def make_user(db, platform):
    from notifications.tests.factories import make_member

    def _make(username=None, *, role="STUDENT", admin=False, plat=None, **kwargs):
        return make_member(platform=plat or platform, username=username, role=role, admin=admin, **kwargs)

    return _make


@pytest.fixture
def api():
    """An API client factory: api(user) -> client authenticated with a fresh token."""
    from rest_framework.test import APIClient

    from notifications.models import AuthToken

    def _client(user=None, *, keyword="Bearer"):
        client = APIClient()
        if user is not None:
            _, raw = AuthToken.issue(user=user, name="test")
            client.credentials(HTTP_AUTHORIZATION=f"{keyword} {raw}")
            client.raw_token = raw
        return client

    return _client

"""Fixtures of the templates tests: an admin, a learner, their API clients."""

import pytest

BASE = "/api/notification/v1/platforms/acme-learning/templates/"
EVENTS = "/api/notification/v1/orgs/acme-learning/events/"


@pytest.fixture
def admin(make_user):
    return make_user("admin", role="ADMIN", admin=True, email="admin@acme-learning.com")


@pytest.fixture
def admin_api(api, admin):
    return api(admin, keyword="Token")


@pytest.fixture
def learner(make_user):
    return make_user("jane.doe", email="jane@example.com")

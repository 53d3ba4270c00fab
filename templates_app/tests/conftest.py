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


@pytest.fixture(autouse=True)
def _push_backend_under_row_channel_name(settings):
    # Rows say "push_notification" while NOTIFICATION_BACKENDS names the push
    # backend "push"; until the pipeline maps one to the other, give the
    # backend both names so events delivering push can run here.
    backends = dict(settings.NOTIFICATION_BACKENDS)
    backends.setdefault("push_notification", backends["push"])
    settings.NOTIFICATION_BACKENDS = backends

"""Fixtures of the alerts tests: two users on one platform, a third on another."""

from __future__ import annotations

import pytest

from notifications.tests.factories import PlatformFactory


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def client(api, alice):
    return api(alice)


@pytest.fixture
def other_platform(db):
    return PlatformFactory(key="globex-academy")


@pytest.fixture
def create(client):
    """POST /alerts as alice; returns the created alert's JSON."""

    def _create(**body):
        body.setdefault("title", "Low Stock Alert")
        body.setdefault("message", "Item 'Laptop Dell XPS 15' is running low on stock (2 remaining)")
        response = client.post("/alerts", body, format="json")
        assert response.status_code == 201, response.json()
        return response.json()["data"]

    return _create

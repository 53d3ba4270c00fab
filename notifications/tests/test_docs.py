"""What docs/errors-and-rate-limits.md and the OpenAPI schema promise, checked against real answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

pytestmark = pytest.mark.django_db

DOC = (Path(settings.BASE_DIR) / "docs" / "errors-and-rate-limits.md").read_text()


@pytest.fixture
def paths(platform, make_user):
    user = make_user("reader", role="ADMIN", admin=True)
    ibl = f"/api/notification/v1/orgs/{platform.key}/users/{user.pk}/notifications-count/"
    return user, {"alerts": "/alerts", "v1": "/api/v1/notifications/unread", "ibl": ibl}


DOCUMENTED_401 = {
    "alerts": {"error": {"code": "not_authenticated", "message": "Authentication credentials were not provided."}},
    "v1": {"message": "Unauthorized", "error": "Authentication credentials were not provided."},
    "ibl": {"detail": "Authentication credentials were not provided."},
}


def test_unauthenticated_bodies_are_the_documented_ones(client, paths):
    _, urls = paths
    for surface, path in urls.items():
        r = client.get(path)
        assert r.status_code == 401 and r.json() == DOCUMENTED_401[surface]
        assert json.dumps(DOCUMENTED_401[surface]) in DOC


def test_throttled_bodies_and_retry_after_are_the_documented_ones(api, paths, settings):
    user, urls = paths
    client = api(user)
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "user": "1/minute"}}
    for path in urls.values():
        cache.clear()
        assert client.get(path).status_code != 429
        r = client.get(path)
        assert r.status_code == 429 and r["Retry-After"] == "60"
        assert json.dumps(r.json()) in DOC


def test_documented_default_rates_are_the_settings(settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    for scope, env, shown in [
        ("user", "THROTTLE_USER_RATE", "1200 / minute"),
        ("platform", "THROTTLE_PLATFORM_RATE", "12000 / minute"),
        ("anon", "THROTTLE_ANON_RATE", "60 / minute"),
        ("template_test", "THROTTLE_TEMPLATE_TEST_RATE", "20 / minute"),
    ]:
        assert rates[scope] == shown.replace(" ", "") and f"| {shown} | `{env}` |" in DOC
    assert settings.SMTP_TEST_RATE == "20/hour" and "| 20 / hour | `SMTP_TEST_RATE` |" in DOC


def test_readme_links_the_page():
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    assert "docs/errors-and-rate-limits.md" in readme


def test_bulk_examples_show_responses_not_the_request(client):
    r = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    schema = r.json()
    assert "docs/errors-and-rate-limits.md" in schema["info"]["description"]
    for channel in ("sms", "email", "push", "in-app"):
        op = schema["paths"][f"/api/v1/notifications/bulk-{channel}"]["post"]
        for status in ("200", "201"):
            examples = op["responses"][status]["content"]["application/json"]["examples"]
            for example in examples.values():
                value = example["value"]
                assert set(value) == {"message", "data", "success", "status_code", "metadata"}, (channel, status)
                assert value["status_code"] == int(status) and value["success"] is True
        request_examples = [
            e["value"] for media in op["requestBody"]["content"].values() for e in media.get("examples", {}).values()
        ]
        assert request_examples and all("success" not in v for v in request_examples)

"""A platform's own SMS provider account through the IBL API, beside its SMTP settings."""

from __future__ import annotations

import pytest

from notifications.models import PlatformProviderCredentials
from notifications.tests.factories import PlatformFactory, make_member

pytestmark = pytest.mark.django_db


def url(platform_key="acme-learning", provider="africastalking"):
    return f"/api/notification/v1/platforms/{platform_key}/config/sms-providers/{provider}/"


@pytest.fixture
def admin_client(api, make_user, platform):
    return api(make_user("padmin", admin=True, role="ADMIN"))


def test_inherited_until_set_then_the_secret_is_write_only(admin_client, platform):
    r = admin_client.get(url())
    assert r.status_code == 200
    assert r.json()["is_inherited"] is True and r.json()["has_secret"] is False

    body = {"username": "acme", "secret": "at-key-1", "sender_id": "ACME"}
    r = admin_client.put(url(), body, format="json")
    assert r.status_code == 200, r.json()
    data = r.json()
    assert (data["is_inherited"], data["has_secret"], data["username"], data["sender_id"]) == (
        False,
        True,
        "acme",
        "ACME",
    )
    assert "secret" not in data and "at-key-1" not in r.content.decode()
    stored = PlatformProviderCredentials.objects.get(platform=platform, provider="africastalking")
    assert stored.secret == "at-key-1" and "at-key-1" not in stored.secret_encrypted

    # PATCH without the secret keeps it.
    r = admin_client.patch(url(), {"sender_id": "ACME2"}, format="json")
    assert r.status_code == 200 and r.json()["sender_id"] == "ACME2"
    stored.refresh_from_db()
    assert stored.secret == "at-key-1"

    r = admin_client.delete(url())
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert not PlatformProviderCredentials.objects.exists()


def test_invalid_input_is_a_400_that_writes_nothing(admin_client):
    for body in (
        {"username": "acme"},  # active without a secret
        {"secret": "k"},  # Africa's Talking without a username
        {"username": ["x"], "secret": "k"},
        {"username": "a" * 300, "secret": "k"},
        {"username": "acme", "secret": "k", "is_active": "maybe"},
    ):
        r = admin_client.put(url(), body, format="json")
        assert r.status_code == 400, (body, r.content)
    assert not PlatformProviderCredentials.objects.exists()


def test_afromessage_needs_no_username(admin_client):
    r = admin_client.put(url(provider="afromessage"), {"secret": "tok", "sender_name": "Acme"}, format="json")
    assert r.status_code == 200 and r.json()["provider"] == "afromessage"


def test_unknown_provider_and_other_platforms_are_404(admin_client, make_user):
    assert admin_client.get(url(provider="twilio")).status_code == 404
    other = PlatformFactory(key="other-school")
    make_member(platform=other, username="someone", role="ADMIN", admin=True)
    assert admin_client.get(url(platform_key="other-school")).status_code == 404
    assert admin_client.put(url(platform_key="other-school"), {"secret": "k"}, format="json").status_code == 404
    assert not PlatformProviderCredentials.objects.exists()


def test_a_student_cannot_see_or_set_them(api, make_user, platform):
    client = api(make_user("learner"))
    assert client.get(url()).status_code == 403
    assert client.put(url(), {"username": "x", "secret": "y"}, format="json").status_code == 403

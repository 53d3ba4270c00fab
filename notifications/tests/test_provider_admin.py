"""The admin side of provider failover: a platform's own provider credentials, and the circuits."""

from __future__ import annotations

import pytest
from django.urls import reverse

from notifications import circuits
from notifications.models import PlatformProviderCredentials
from notifications.tests.factories import PlatformFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:notifications_platformprovidercredentials_changelist"
ADD = "admin:notifications_platformprovidercredentials_add"
TWO_SMS = [
    {"BACKEND": "notifications.backends.sms.AfroMessageBackend", "OPTIONS": {"BASE_URL": "http://127.0.0.1:9/api"}},
    {"BACKEND": "notifications.backends.africastalking.AfricasTalkingBackend", "OPTIONS": {}},
]


@pytest.fixture
def two_sms_providers(settings):
    settings.AFROMESSAGE = {"BASE_URL": "http://127.0.0.1:9/api", "TOKEN": "t"}
    settings.AFRICASTALKING = {"BASE_URL": "http://127.0.0.1:9/version1", "USERNAME": "u", "API_KEY": "k"}
    settings.NOTIFICATION_BACKENDS = {**settings.NOTIFICATION_BACKENDS, "sms": TWO_SMS}
    settings.NOTIFY_CIRCUIT_FAILURES = 2


@pytest.fixture
def root(client, make_user):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))


@pytest.fixture
def platform_admin(client, make_user, platform):
    client.force_login(make_user("padmin", is_staff=True, admin=True))


def test_operators_see_each_providers_circuit(client, root, two_sms_providers):
    for _ in range(2):
        circuits.failure_record(channel="sms", provider="afromessage", error="AfroMessage HTTP 503: down")
    html = client.get(reverse(CHANGELIST)).content.decode()
    assert "Provider circuits" in html
    assert '<tr class="circuit-open">' in html and "afromessage" in html
    assert '<tr class="circuit-closed">' in html and "africastalking" in html
    assert "AfroMessage HTTP 503: down" in html


def test_without_several_providers_there_is_no_circuit_to_show(client, root):
    html = client.get(reverse(CHANGELIST)).content.decode()
    assert "nothing to fail over to" in html


def test_platform_admins_do_not_see_the_projects_circuits(client, platform_admin, two_sms_providers):
    r = client.get(reverse(CHANGELIST))
    assert r.status_code == 200 and "Provider circuits" not in r.content.decode()


def test_the_secret_is_stored_encrypted_and_never_shown(client, platform_admin, platform):
    r = client.post(
        reverse(ADD),
        {
            "platform": platform.pk,
            "provider": "africastalking",
            "username": "acme",
            "sender_id": "ACME",
            "sender_name": "",
            "secret": "at-live-key-123",
            "is_active": "on",
        },
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    stored = PlatformProviderCredentials.objects.get(platform=platform)
    assert stored.secret == "at-live-key-123"
    assert "at-live-key-123" not in stored.secret_encrypted
    page = client.get(reverse("admin:notifications_platformprovidercredentials_change", args=[stored.pk]))
    assert "at-live-key-123" not in page.content.decode()


def test_africas_talking_needs_a_username_and_active_credentials_a_secret(client, platform_admin, platform):
    r = client.post(reverse(ADD), {"platform": platform.pk, "provider": "africastalking", "is_active": "on"})
    assert r.status_code == 200
    errors = r.context["adminform"].form.errors
    assert "username" in errors and "secret" in errors
    assert not PlatformProviderCredentials.objects.exists()


def test_a_platform_admin_cannot_add_credentials_for_another_platform(client, platform_admin):
    other = PlatformFactory(key="other-school")
    r = client.post(reverse(ADD), {"platform": other.pk, "provider": "afromessage", "secret": "x", "is_active": "on"})
    assert r.status_code == 200 and "platform" in r.context["adminform"].form.errors
    assert not PlatformProviderCredentials.objects.exists()

"""Where a platform's SMTP server may be: public addresses only, checked when saved and when connecting."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from notifications import addresses, smtp
from notifications.models import PlatformSMTPSettings

pytestmark = pytest.mark.django_db

SETTINGS_URL = "/api/notification/v1/platforms/acme-learning/config/smtp/"
TEST_URL = "/api/notification/v1/platforms/acme-learning/config/test-smtp/"
SETTINGS_BODY = {
    "smtp_host": "93.184.216.34",
    "smtp_port": 587,
    "smtp_username": "notifications@acme.example",
    "smtp_password": "s3cret-pass",
    "use_tls": True,
    "use_ssl": False,
    "from_email": "no-reply@acme.example",
}
REFUSED = "This host does not resolve to a public address. SMTP servers must be reachable on the public internet."

# Not public although Python 3.11's is_global says they are.
NOT_GLOBAL = ["fec0::1", "feff::1", "3fff::1", "192.88.99.1", "5f00::1", "2001:2::1"]
# Spellings of loopback that are not literal addresses to `ipaddress` but resolve to 127.0.0.1.
LOOPBACK_SPELLINGS = ["127.1", "0x7f.1", "2130706433", "0177.0.0.1", "localhost"]


@pytest.fixture
def client(make_user, api):
    return api(make_user("admin.user", role="ADMIN", admin=True), keyword="Token")


@pytest.fixture
def no_connect(monkeypatch):
    attempts = []

    def refuse(target, deadline, timeout):
        attempts.append(target)
        raise AssertionError(f"connected to {target}")

    monkeypatch.setattr(smtp, "_connect_checked", refuse)
    return attempts


@pytest.fixture
def dns(monkeypatch):
    """Answers for names the test makes up; every other name goes to the system resolver."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        out = []
        for a in answers[host]:
            family = socket.AF_INET if ipaddress.ip_address(a).version == 4 else socket.AF_INET6
            sockaddr = (a, port) if family == socket.AF_INET else (a, port, 0, 0)
            out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    monkeypatch.setattr(smtp, "_getaddrinfo", getaddrinfo)
    return answers


@pytest.mark.parametrize("address", NOT_GLOBAL)
def test_ranges_is_global_misses_are_not_public(address):
    assert addresses.is_public_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "93.184.216.34", "2a00:1450::1"])
def test_public_unicast_stays_public(address):
    assert addresses.is_public_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize("host", NOT_GLOBAL)
def test_live_test_refuses_them_before_connecting(client, no_connect, host):
    body = {**SETTINGS_BODY, "smtp_host": host, "test_email": "verify@example.com"}
    r = client.post(TEST_URL, body, format="json")
    assert r.status_code == 400
    assert r.json()["smtp_host"] == [REFUSED]
    assert no_connect == []


@pytest.mark.parametrize("host", [*NOT_GLOBAL, *LOOPBACK_SPELLINGS, "[::1]", "::ffff:127.0.0.1"])
def test_settings_that_lead_to_private_addresses_are_not_saved(client, platform, host):
    r = client.put(SETTINGS_URL, {**SETTINGS_BODY, "smtp_host": host}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["smtp_host"] == [REFUSED]
    assert not PlatformSMTPSettings.objects.filter(platform=platform).exists()


@pytest.mark.parametrize("addresses", [["127.0.0.1"], ["10.1.2.3"], ["93.184.216.34", "169.254.169.254"], ["fec0::1"]])
def test_names_are_resolved_when_saved(client, platform, dns, addresses):
    dns["mail.tenant.example"] = addresses
    r = client.put(SETTINGS_URL, {**SETTINGS_BODY, "smtp_host": "mail.tenant.example"}, format="json")
    assert r.status_code == 400
    assert r.json()["smtp_host"] == [REFUSED]
    assert not PlatformSMTPSettings.objects.filter(platform=platform).exists()


def test_a_name_resolving_to_public_addresses_is_saved_as_given(client, platform, dns):
    dns["smtp.tenant.example"] = ["93.184.216.34"]
    r = client.put(SETTINGS_URL, {**SETTINGS_BODY, "smtp_host": "smtp.tenant.example"}, format="json")
    assert r.status_code == 200, r.content
    assert PlatformSMTPSettings.objects.get(platform=platform).host == "smtp.tenant.example"


def test_a_patch_is_checked_like_a_put(client, platform):
    assert client.put(SETTINGS_URL, SETTINGS_BODY, format="json").status_code == 200
    r = client.patch(SETTINGS_URL, {"smtp_host": "0x7f.1"}, format="json")
    assert r.status_code == 400
    assert PlatformSMTPSettings.objects.get(platform=platform).host == "93.184.216.34"


@pytest.mark.parametrize("host", ["127.1", "0x7f.1", "2130706433", "localhost", "fec0::1", "192.88.99.1"])
def test_admin_form_refuses_them_too(admin_client, platform, host):
    form = {
        "platform": platform.pk,
        "host": host,
        "port": 587,
        "username": "",
        "password": "",
        "use_tls": "on",
        "from_email": "",
        "timeout": 10,
        "is_active": "on",
    }
    r = admin_client.post("/admin/notifications/platformsmtpsettings/add/", form)
    assert r.status_code == 200
    assert b"does not resolve to a public address" in r.content
    assert not PlatformSMTPSettings.objects.filter(platform=platform).exists()
    r = admin_client.post("/admin/notifications/platformsmtpsettings/add/", {**form, "host": "93.184.216.34"})
    assert r.status_code == 302
    assert PlatformSMTPSettings.objects.get(platform=platform).host == "93.184.216.34"

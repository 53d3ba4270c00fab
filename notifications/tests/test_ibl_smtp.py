"""Platform SMTP (IBL §7.4, §11): the settings API and the live test against real servers on loopback."""

from __future__ import annotations

import email
import ipaddress
import json
import socket

import pytest

from notifications import addresses, smtp
from notifications.models import PlatformSMTPSettings
from notifications.tests.factories import PlatformFactory, make_member
from notifications.tests.smtp_servers import (
    SERVER_NAME,
    Authenticator,
    LoopbackController,
    RawPeer,
    RecordingHandler,
    closed_port,
    make_test_ca,
    not_smtp,
    silent,
    trickle,
)

pytestmark = pytest.mark.django_db

BASE = "/api/notification/v1/platforms/acme-learning/config/"
TEST_URL = BASE + "test-smtp/"
SETTINGS_URL = BASE + "smtp/"

SENT = "Test email sent successfully to verify@example.com. Please check your inbox to confirm delivery."
AUTH_FAILED = {
    "success": False,
    "status": "error",
    "message": "SMTP test failed: Authentication failed. Please check your username and password.",
}
CONNECTION_FAILED = {
    "success": False,
    "status": "error",
    "message": "SMTP test failed: Connection failed. Please check your host and port settings.",
}


@pytest.fixture
def admin(make_user):
    return make_user("admin.user", role="ADMIN", admin=True)


@pytest.fixture
def client(admin, api):
    return api(admin, keyword="Token")


@pytest.fixture
def loopback_allowed(settings):
    """Self-hosted mode: loopback allow-listed, as an operator would for an internal relay."""
    settings.SMTP_TEST_ALLOWED_HOSTS = ["127.0.0.1"]
    return settings


@pytest.fixture
def server(loopback_allowed):
    handler = RecordingHandler()
    controller = LoopbackController(handler)
    controller.start()
    loopback_allowed.SMTP_TEST_EXTRA_PORTS = [controller.port]
    controller.handler_ = handler
    yield controller
    controller.stop()


@pytest.fixture
def test_ca(tmp_path, monkeypatch):
    ca = make_test_ca(tmp_path)
    # OpenSSL reads SSL_CERT_FILE whenever a default context loads its trust store.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))
    return ca


@pytest.fixture
def auth_server(loopback_allowed, test_ca):
    """STARTTLS with a certificate for 127.0.0.1, AUTH required and offered only after STARTTLS."""
    handler = RecordingHandler()
    controller = LoopbackController(
        handler,
        tls_context=test_ca.server_context,
        require_starttls=True,
        auth_required=True,
        authenticator=Authenticator("notifications@example.com", "app-specific-password"),
    )
    controller.start()
    loopback_allowed.SMTP_TEST_EXTRA_PORTS = [controller.port]
    controller.handler_ = handler
    yield controller
    controller.stop()


class FakeDNS:
    """Answers for the DNS (outside this machine): name -> addresses; records each lookup."""

    def __init__(self):
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []

    def __setitem__(self, name, addresses):
        self.answers[name] = addresses

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        self.lookups.append(host)
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            if host not in self.answers:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            addresses = self.answers[host]
        out = []
        for a in addresses:
            if ipaddress.ip_address(a).version == 4:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)))
            else:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)))
        return out


@pytest.fixture
def fake_dns(monkeypatch):
    dns = FakeDNS()
    monkeypatch.setattr(smtp, "_getaddrinfo", dns.getaddrinfo)
    return dns


@pytest.fixture
def no_connect(monkeypatch):
    """Fails the test if the SMTP test tries to open any connection."""
    attempts = []

    def refuse(target, deadline, timeout):
        attempts.append(target)
        raise AssertionError(f"connected to {target}")

    monkeypatch.setattr(smtp, "_connect_checked", refuse)
    return attempts


def body(port, **overrides):
    data = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_username": "",
        "smtp_password": "",
        "use_tls": False,
        "use_ssl": False,
        "test_email": "verify@example.com",
        "from_email": "notifications@example.com",
    }
    data.update(overrides)
    return data


# --- the live test ----------------------------------------------------------------------


@pytest.mark.integration
def test_sends_the_test_email_through_a_server_without_authentication(client, server):
    r = client.post(TEST_URL, body(server.port), format="json")
    assert r.status_code == 200, r.content
    assert r.json() == {"success": True, "status": "success", "message": SENT}
    [received] = server.handler_.messages
    assert received.mail_from == "notifications@example.com"
    assert received.rcpt_tos == ["verify@example.com"]
    msg = email.message_from_bytes(received.content)
    assert msg["Subject"] == "SMTP test from Acme Learning"
    assert msg["To"] == "verify@example.com"
    assert "the settings work" in msg.get_payload()


@pytest.mark.integration
def test_starttls_and_authentication_with_certificate_checks(client, auth_server):
    r = client.post(
        TEST_URL,
        body(
            auth_server.port,
            smtp_username="notifications@example.com",
            smtp_password="app-specific-password",
            use_tls=True,
        ),
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["success"] is True
    [received] = auth_server.handler_.messages
    assert received.rcpt_tos == ["verify@example.com"]


@pytest.mark.integration
def test_wrong_password_is_the_documented_authentication_failure(client, auth_server):
    r = client.post(
        TEST_URL,
        body(auth_server.port, smtp_username="notifications@example.com", smtp_password="wrong", use_tls=True),
        format="json",
    )
    assert (r.status_code, r.json()) == (500, AUTH_FAILED)
    assert auth_server.handler_.messages == []


@pytest.mark.integration
def test_authentication_not_offered_without_tls_says_so(client, auth_server):
    r = client.post(
        TEST_URL,
        body(auth_server.port, smtp_username="notifications@example.com", smtp_password="app-specific-password"),
        format="json",
    )
    assert r.status_code == 500
    assert r.json()["success"] is False
    assert r.json()["message"].startswith("SMTP test failed: Authentication failed.")
    assert "STARTTLS" in r.json()["message"]


@pytest.mark.integration
def test_starttls_asked_of_a_server_without_it(client, server):
    r = client.post(TEST_URL, body(server.port, use_tls=True), format="json")
    assert r.status_code == 500
    assert r.json()["message"] == smtp.STARTTLS_NOT_OFFERED


@pytest.mark.integration
def test_certificate_for_another_name_fails_tls(client, auth_server, fake_dns, loopback_allowed):
    # The certificate covers mail.example.test and 127.0.0.1, not this name.
    fake_dns["other.example.test"] = ["127.0.0.1"]
    r = client.post(
        TEST_URL,
        body(
            auth_server.port,
            smtp_host="other.example.test",
            smtp_username="notifications@example.com",
            smtp_password="app-specific-password",
            use_tls=True,
        ),
        format="json",
    )
    assert (r.status_code, r.json()["message"]) == (500, smtp.TLS_FAILED)


@pytest.mark.integration
def test_connects_to_the_checked_address_and_verifies_the_name(client, auth_server, fake_dns, loopback_allowed):
    """An allow-listed internal name: resolved once, connected by address, certificate checked by name."""
    loopback_allowed.SMTP_TEST_ALLOWED_HOSTS = [SERVER_NAME]
    fake_dns[SERVER_NAME] = ["127.0.0.1"]
    r = client.post(
        TEST_URL,
        body(
            auth_server.port,
            smtp_host=SERVER_NAME,
            smtp_username="notifications@example.com",
            smtp_password="app-specific-password",
            use_tls=True,
        ),
        format="json",
    )
    assert r.status_code == 200, r.content
    assert fake_dns.lookups == [SERVER_NAME]


@pytest.mark.integration
def test_implicit_tls(client, loopback_allowed, test_ca):
    handler = RecordingHandler()
    controller = LoopbackController(handler, ssl_context=test_ca.server_context)
    controller.start()
    try:
        loopback_allowed.SMTP_TEST_EXTRA_PORTS = [controller.port]
        r = client.post(TEST_URL, body(controller.port, use_ssl=True), format="json")
        assert r.status_code == 200, r.content
        assert len(handler.messages) == 1
    finally:
        controller.stop()


@pytest.mark.integration
def test_ssl_against_a_plain_server_is_a_connection_failure(client, server):
    r = client.post(TEST_URL, body(server.port, use_ssl=True), format="json")
    assert (r.status_code, r.json()) == (500, CONNECTION_FAILED)


@pytest.mark.integration
def test_the_documented_example_request(client, fake_dns, settings):
    """§7.4's request as written. DNS answers loopback (allow-listed) where nothing listens on 587."""
    settings.SMTP_TEST_ALLOWED_HOSTS = ["smtp.gmail.com"]
    fake_dns["smtp.gmail.com"] = ["127.0.0.1"]
    r = client.post(
        TEST_URL,
        {
            "smtp_host": "smtp.gmail.com",
            "smtp_port": 587,
            "smtp_username": "notifications@example.com",
            "smtp_password": "app-specific-password",
            "use_tls": True,
            "use_ssl": False,
            "test_email": "verify@example.com",
            "from_email": "notifications@example.com",
        },
        format="json",
    )
    assert (r.status_code, r.json()) == (500, CONNECTION_FAILED)


@pytest.mark.integration
@pytest.mark.parametrize(
    "behaviour",
    [pytest.param(None, id="refused"), pytest.param(silent, id="silent"), pytest.param(not_smtp, id="not-smtp")],
)
def test_closed_filtered_and_foreign_targets_all_answer_alike(client, loopback_allowed, behaviour):
    loopback_allowed.SMTP_TEST_CONNECT_TIMEOUT = 0.5
    peer = RawPeer(behaviour) if behaviour else None
    port = peer.port if peer else closed_port()
    loopback_allowed.SMTP_TEST_EXTRA_PORTS = [port]
    try:
        r = client.post(TEST_URL, body(port), format="json")
    finally:
        if peer:
            peer.close()
    assert (r.status_code, r.json()) == (500, CONNECTION_FAILED)


@pytest.mark.integration
def test_a_server_that_never_finishes_hits_the_total_deadline(client, loopback_allowed):
    loopback_allowed.SMTP_TEST_TOTAL_TIMEOUT = 1
    peer = RawPeer(trickle)
    loopback_allowed.SMTP_TEST_EXTRA_PORTS = [peer.port]
    try:
        r = client.post(TEST_URL, body(peer.port), format="json")
    finally:
        peer.close()
    assert (r.status_code, r.json()) == (500, CONNECTION_FAILED)


def test_an_unresolvable_host_answers_like_a_private_one(client, fake_dns, no_connect):
    fake_dns["private.example.test"] = ["10.0.0.8"]
    unresolvable = client.post(TEST_URL, body(587, smtp_host="nowhere.example.test"), format="json")
    private = client.post(TEST_URL, body(587, smtp_host="private.example.test"), format="json")
    assert unresolvable.status_code == private.status_code == 400
    assert unresolvable.json() == private.json()
    assert no_connect == []


# --- not a port scanner -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "169.254.169.254", "10.0.0.1", "[::1]", "::1", "0.0.0.0", "localhost"])
def test_non_public_hosts_are_refused_before_connecting(client, host, no_connect):
    r = client.post(TEST_URL, body(587, smtp_host=host), format="json")
    assert r.status_code == 400, r.content
    data = r.json()
    assert data["success"] is False and data["status"] == "error"
    assert "does not resolve to a public address" in data["message"]
    assert data["smtp_host"] == [data["message"]]
    assert no_connect == []


@pytest.mark.integration
def test_a_listening_loopback_server_sees_no_connection_when_not_allow_listed(client, settings):
    peer = RawPeer(not_smtp)
    settings.SMTP_TEST_EXTRA_PORTS = [peer.port]
    try:
        r = client.post(TEST_URL, body(peer.port), format="json")
    finally:
        peer.close()
    assert r.status_code == 400
    assert peer.connections == 0


@pytest.mark.parametrize(
    "addresses",
    [["127.0.0.2"], ["203.0.113.7"], ["93.184.216.34", "10.1.2.3"], ["::ffff:127.0.0.1"], ["fe80::1"]],
    ids=["loopback", "documentation-range", "one-private-among-public", "ipv4-mapped-loopback", "link-local-v6"],
)
def test_names_resolving_to_non_public_addresses_are_refused(client, fake_dns, no_connect, addresses):
    fake_dns["mail.attacker.example"] = addresses
    r = client.post(TEST_URL, body(587, smtp_host="mail.attacker.example"), format="json")
    assert r.status_code == 400
    assert "smtp_host" in r.json()
    assert no_connect == []


def test_non_smtp_ports_are_refused_before_connecting(client, settings, no_connect):
    settings.SMTP_TEST_ALLOWED_HOSTS = ["127.0.0.1"]
    r = client.post(TEST_URL, body(6379), format="json")
    assert r.status_code == 400
    assert r.json()["smtp_port"] == ["Port 6379 is not an SMTP port. Allowed ports: 25, 465, 587, 2525."]
    assert no_connect == []


def test_allow_listed_networks(settings, fake_dns):
    settings.SMTP_TEST_ALLOWED_HOSTS = ["10.20.0.0/16"]
    fake_dns["relay.internal"] = ["10.20.1.5"]
    target = smtp.smtp_target_resolve(host="relay.internal", port=25)
    assert target.addresses == ((socket.AF_INET, ("10.20.1.5", 25)),)
    fake_dns["other.internal"] = ["10.30.1.5"]
    with pytest.raises(smtp.TargetRefused):
        smtp.smtp_target_resolve(host="other.internal", port=25)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("239.1.1.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fc00::1", False),
        ("fe80::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("2002:7f00:1::1", False),
    ],
)
def test_public_address_rules(address, public):
    assert addresses.is_public_address(ipaddress.ip_address(address)) is public


# --- input, access, throttle ------------------------------------------------------------


def test_tls_and_ssl_together_are_a_400(client, no_connect):
    r = client.post(TEST_URL, body(465, use_tls=True, use_ssl=True, smtp_host="93.184.216.34"), format="json")
    assert r.status_code == 400
    data = r.json()
    assert data["success"] is False
    assert "mutually exclusive" in data["use_ssl"][0]
    assert no_connect == []


def test_required_fields_are_named(client):
    r = client.post(TEST_URL, {"smtp_port": 70000}, format="json")
    assert r.status_code == 400
    data = r.json()
    assert {"smtp_host", "smtp_port", "smtp_username", "smtp_password", "test_email"} <= set(data)
    assert data["success"] is False and data["message"]


@pytest.mark.integration
def test_from_email_defaults_to_the_username(client, server):
    r = client.post(
        TEST_URL, {**body(server.port, smtp_username="sender@example.com"), "from_email": None}, format="json"
    )
    # None is not an address; leaving the field out is how a client asks for the default.
    assert r.status_code == 400
    data = body(server.port, smtp_username="sender@example.com")
    del data["from_email"]
    r = client.post(TEST_URL, data, format="json")
    assert r.status_code == 200, r.content
    assert server.handler_.messages[0].mail_from == "sender@example.com"


def test_from_email_is_needed_when_the_username_is_not_an_address(client, no_connect):
    data = body(587, smtp_username="apikey", smtp_host="93.184.216.34")
    del data["from_email"]
    r = client.post(TEST_URL, data, format="json")
    assert r.status_code == 400
    assert "from_email" in r.json()


def test_only_platform_admins_may_test(make_user, api, no_connect):
    r = api(make_user("jane.doe"), keyword="Token").post(TEST_URL, body(587), format="json")
    assert r.status_code == 403
    outsider = make_member(platform=PlatformFactory(key="other-org"), username="outsider", admin=True)
    r = api(outsider).post(TEST_URL, body(587), format="json")
    assert r.status_code == 404
    assert api().post(TEST_URL, body(587), format="json").status_code == 401


def test_rbac_requires_the_smtp_grant(platform, make_user, api, no_connect):
    platform.rbac_enabled = True
    platform.save()
    member_admin = make_user("student.admin", role="STUDENT", admin=True)
    r = api(member_admin).post(TEST_URL, body(587), format="json")
    assert (r.status_code, r.json()) == (403, {"detail": "Missing permission: Ibl.Notifications/SMTP/action"})
    role_admin = make_user("role.admin", role="ADMIN", admin=True)
    r = api(role_admin).post(TEST_URL, body(587, smtp_host="10.0.0.1"), format="json")
    assert r.status_code == 400  # past the permission check, refused by the host rule


def test_throttled_per_platform(client, settings, make_user, api, no_connect):
    settings.SMTP_TEST_RATE = "2/min"
    refused = body(587, smtp_host="10.0.0.1")
    assert client.post(TEST_URL, refused, format="json").status_code == 400
    other_admin = api(make_user("second.admin", role="ADMIN", admin=True))
    assert other_admin.post(TEST_URL, refused, format="json").status_code == 400
    r = client.post(TEST_URL, refused, format="json")
    assert r.status_code == 429
    assert int(r["Retry-After"]) > 0
    # Another platform has its own budget.
    other = PlatformFactory(key="other-org")
    their_admin = make_member(platform=other, username="their.admin", role="ADMIN", admin=True)
    r = api(their_admin).post("/api/notification/v1/platforms/other-org/config/test-smtp/", refused, format="json")
    assert r.status_code == 400


# --- saved settings ---------------------------------------------------------------------


SETTINGS_BODY = {
    "smtp_host": "93.184.216.34",
    "smtp_port": 587,
    "smtp_username": "notifications@acme.example",
    "smtp_password": "s3cret-pass",
    "use_tls": True,
    "use_ssl": False,
    "from_email": "no-reply@acme.example",
}


def test_settings_start_inherited(client):
    r = client.get(SETTINGS_URL)
    assert r.status_code == 200
    assert r.json()["is_inherited"] is True
    assert r.json()["smtp_host"] is None and r.json()["has_password"] is False


def test_put_stores_the_password_encrypted_and_never_returns_it(client, platform):
    r = client.put(SETTINGS_URL, SETTINGS_BODY, format="json")
    assert r.status_code == 200, r.content
    data = r.json()
    assert "s3cret-pass" not in json.dumps(data) and "smtp_password" not in data
    assert data | {"updated_at": None} == {
        "platform": "acme-learning",
        "is_inherited": False,
        "smtp_host": "93.184.216.34",
        "smtp_port": 587,
        "smtp_username": "notifications@acme.example",
        "has_password": True,
        "use_tls": True,
        "use_ssl": False,
        "from_email": "no-reply@acme.example",
        "timeout": 10,
        "is_active": True,
        "updated_at": None,
    }
    stored = PlatformSMTPSettings.objects.get(platform=platform)
    assert "s3cret-pass" not in stored.password_encrypted
    assert stored.password == "s3cret-pass"
    assert "s3cret-pass" not in json.dumps(client.get(SETTINGS_URL).json())


def test_put_without_password_keeps_it_and_empty_removes_it(client, platform):
    client.put(SETTINGS_URL, SETTINGS_BODY, format="json")
    data = {k: v for k, v in SETTINGS_BODY.items() if k != "smtp_password"}
    r = client.put(SETTINGS_URL, {**data, "smtp_port": 2525}, format="json")
    assert r.json()["has_password"] is True and r.json()["smtp_port"] == 2525
    assert PlatformSMTPSettings.objects.get(platform=platform).password == "s3cret-pass"
    r = client.put(SETTINGS_URL, {**data, "smtp_password": ""}, format="json")
    assert r.json()["has_password"] is False


def test_patch_changes_only_what_it_names(client):
    assert client.patch(SETTINGS_URL, {"smtp_port": 465}, format="json").status_code == 404
    client.put(SETTINGS_URL, SETTINGS_BODY, format="json")
    r = client.patch(SETTINGS_URL, {"use_tls": False, "use_ssl": True, "smtp_port": 465}, format="json")
    assert r.status_code == 200
    assert (r.json()["smtp_port"], r.json()["use_ssl"], r.json()["smtp_host"]) == (465, True, "93.184.216.34")
    r = client.patch(SETTINGS_URL, {"use_tls": True}, format="json")
    assert r.status_code == 400 and "use_ssl" in r.json()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"use_tls": True, "use_ssl": True}, "use_ssl"),
        ({"smtp_host": "10.0.0.1"}, "smtp_host"),
        ({"smtp_host": "localhost"}, "smtp_host"),
        ({"smtp_host": "smtp.example.com:587"}, "smtp_host"),
        ({"smtp_port": 6379}, "smtp_port"),
        ({"from_email": "not-an-address"}, "from_email"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_put_validation(client, platform, change, field):
    r = client.put(SETTINGS_URL, {**SETTINGS_BODY, **change}, format="json")
    assert r.status_code == 400
    assert field in r.json()
    assert not PlatformSMTPSettings.objects.filter(platform=platform).exists()


def test_allow_listed_internal_server_may_be_saved(client, settings):
    settings.SMTP_TEST_ALLOWED_HOSTS = ["10.0.0.25"]
    settings.SMTP_TEST_EXTRA_PORTS = [1025]
    r = client.put(SETTINGS_URL, {**SETTINGS_BODY, "smtp_host": "10.0.0.25", "smtp_port": 1025}, format="json")
    assert r.status_code == 200, r.content


def test_delete_resets_to_the_default(client, platform):
    client.put(SETTINGS_URL, SETTINGS_BODY, format="json")
    r = client.delete(SETTINGS_URL)
    assert r.json() == {
        "message": "SMTP settings reset. Platform will now use the default SMTP server.",
        "deleted": True,
    }
    assert not PlatformSMTPSettings.objects.filter(platform=platform).exists()
    r = client.delete(SETTINGS_URL)
    assert r.json() == {"message": "Platform was already using the default SMTP server.", "deleted": False}
    assert client.get(SETTINGS_URL).json()["is_inherited"] is True


def test_settings_need_a_platform_admin(make_user, api, platform):
    member = api(make_user("jane.doe"))
    assert member.get(SETTINGS_URL).status_code == 403
    assert member.put(SETTINGS_URL, SETTINGS_BODY, format="json").status_code == 403
    outsider = make_member(platform=PlatformFactory(key="other-org"), username="outsider", admin=True)
    assert api(outsider).get(SETTINGS_URL).status_code == 404
    platform.rbac_enabled = True
    platform.save()
    assert api(make_user("student.admin", admin=True)).get(SETTINGS_URL).status_code == 403
    assert api(make_user("role.admin", role="ADMIN", admin=True)).get(SETTINGS_URL).status_code == 200


def test_other_platforms_settings_are_separate(client, api):
    other = PlatformFactory(key="other-org")
    their_admin = make_member(platform=other, username="their.admin", role="ADMIN", admin=True)
    client.put(SETTINGS_URL, SETTINGS_BODY, format="json")
    r = api(their_admin).get("/api/notification/v1/platforms/other-org/config/smtp/")
    assert r.json()["is_inherited"] is True


def test_admin_keeps_the_password_write_only(client, platform, admin_client):
    client.put(SETTINGS_URL, SETTINGS_BODY, format="json")
    obj = PlatformSMTPSettings.objects.get(platform=platform)
    assert admin_client.get("/admin/notifications/platformsmtpsettings/").status_code == 200
    page = admin_client.get(f"/admin/notifications/platformsmtpsettings/{obj.pk}/change/")
    assert page.status_code == 200 and b"s3cret-pass" not in page.content
    form = {
        "platform": platform.pk,
        "host": "93.184.216.34",
        "port": 465,
        "username": "notifications@acme.example",
        "password": "",
        "use_ssl": "on",
        "from_email": "",
        "timeout": 10,
        "is_active": "on",
    }
    r = admin_client.post(f"/admin/notifications/platformsmtpsettings/{obj.pk}/change/", form)
    assert r.status_code == 302, r.content
    obj.refresh_from_db()
    assert (obj.port, obj.use_ssl, obj.password) == (465, True, "s3cret-pass")
    r = admin_client.post(f"/admin/notifications/platformsmtpsettings/{obj.pk}/change/", {**form, "host": "10.0.0.1"})
    assert r.status_code == 200 and b"does not resolve to a public address" in r.content
    assert admin_client.get("/admin/notifications/deviceregistration/").status_code == 200

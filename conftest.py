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
    # Which endpoints subscribe to what is cached per process; a test's endpoints end with it.
    from webhooks import events

    events.subscriptions_forget()
    # So are the platforms' quiet hours.
    from templates_app.services import delivery_rules

    delivery_rules.quiet_hours_forget()
    from templates_app.services import frequency_caps

    frequency_caps.frequency_caps_forget()
    # The FCM backend keeps each service account's credentials (and its access
    # token) per process. A later test's fake Google may listen on a port an
    # earlier one used, so the same key would bring an access token that fake
    # never issued: its first send answered 401 and sent again.
    from notifications.backends import push

    push._credentials_for.cache_clear()
    # A channels-redis layer binds its receive machinery to the event loop that
    # first used it; each test starts with a fresh layer so that a test's loop
    # (an in-thread server, async_to_sync) never meets another test's.
    from channels.layers import channel_layers

    channel_layers.backends.clear()


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


# -- Local stand-ins for the providers (notifications/tests/fakes.py) -------------


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback recording what it receives; no AUTH."""
    from notifications.tests.fakes import SMTPServer

    with SMTPServer() as server:
        yield server


@pytest.fixture
def smtp_server_auth():
    """A real SMTP server on loopback that requires AUTH (LOGIN or PLAIN) as mailer / s3cret-pass."""
    from notifications.tests.fakes import SMTPServer

    with SMTPServer(credentials=("mailer", "s3cret-pass")) as server:
        yield server


@pytest.fixture
def afromessage_server():
    """An HTTP server speaking AfroMessage's send / bulk_send; `.settings` fits settings.AFROMESSAGE."""
    from notifications.tests.fakes import AfroMessageServer

    with AfroMessageServer() as server:
        yield server


@pytest.fixture
def africastalking_server():
    """An HTTP server speaking Africa's Talking's messaging API; `.settings` fits settings.AFRICASTALKING."""
    from notifications.tests.fakes import AfricasTalkingServer

    with AfricasTalkingServer() as server:
        yield server


@pytest.fixture(scope="session")
def service_account_keypair():
    """A throwaway RSA key pair (private PEM, public PEM) for a test service account."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.fixture
def fcm_server(service_account_keypair):
    """Google's OAuth token endpoint and FCM v1 on loopback; `.settings` fits settings.FCM."""
    from notifications.tests.fakes import FCMServer

    private_pem, public_pem = service_account_keypair
    with FCMServer(private_key_pem=private_pem, public_key_pem=public_pem) as server:
        yield server


@pytest.fixture
def loopback_only(monkeypatch):
    """Make any connection or name lookup that would leave this machine fail loudly.

    Provider libraries phone home in ways that are easy to miss (google-auth's
    background lookups, retries against a default endpoint); tests that talk to
    the local fakes use this to prove they never reach the internet.
    """
    import ipaddress
    import socket

    def _local(host) -> bool:
        if host in ("localhost", "") or host is None:
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    real_getaddrinfo = socket.getaddrinfo
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host, *args, **kwargs):
        if not _local(host):
            raise OSError(f"test tried to resolve {host!r}: only loopback is allowed")
        return real_getaddrinfo(host, *args, **kwargs)

    def _check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            raise OSError(f"test tried to connect to {address!r}: only loopback is allowed")

    def connect(sock, address):
        _check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        _check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


# -- A live server and a real browser ---------------------------------------------


@pytest.fixture
def live_url(transactional_db):
    """uvicorn serving config.asgi (HTTP + WebSocket) in a thread; yields http://127.0.0.1:<port>.

    The server shares this process's test database, so tests that use it need a
    transactional database (SQLite's in-memory one is not visible to other
    processes, but it is to this thread).
    """
    import socket
    import threading
    import time

    import uvicorn

    from notifications.tests.live import server_connections_closed

    with server_connections_closed():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config("config.asgi:application", lifespan="off", log_config=None))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser(monkeypatch):
    """Debian's headless chromium driven by Playwright (never a downloaded browser build).

    Playwright's sync API runs an event loop in this thread; Django would then
    refuse the test's own ORM calls as "async", though they run synchronously.
    """
    import os

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield instance
        finally:
            instance.close()


class FrozenClock:
    """`django.utils.timezone.now` held at a chosen instant; `advance` moves it on."""

    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now

    def set(self, when) -> None:
        self.now = when

    def advance(self, **delta) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    """A frozen clock for everything that asks `timezone.now()` (the pipeline, dispatch, the sweep).

    Starts at the real time; tests `set` it (an aware datetime) or `advance` it.
    The clock is outside the code under test, so only it is replaced.
    """
    from django.utils import timezone

    frozen = FrozenClock(timezone.now())
    monkeypatch.setattr(timezone, "now", frozen)
    return frozen

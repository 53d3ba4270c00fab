"""End to end: a real uvicorn server, channels-redis on Redis, the `websockets` client."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from notifications.models import AuthToken
from notifications.pipeline import Message, Recipient, notification_send

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def server_log():
    """What the project's console log handler (with the token filter) writes."""
    # Importing the ASGI app runs django.setup(), which configures logging
    # afresh: take the handler it leaves in place.
    import config.asgi  # noqa: F401

    handler = logging.getLogger("uvicorn.access").handlers[0]
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


@pytest.fixture
def asgi_server(server_log, live_url):
    """uvicorn serving config.asgi in a thread of this process (shares the test database)."""
    return live_url.replace("http://", "ws://", 1)


def _status(exc_info) -> int:
    return exc_info.value.response.status_code


def test_a_real_client_receives_the_notification_on_every_socket(asgi_server, server_log, platform, make_user):
    jane, bob = make_user("jane"), make_user("bob")
    _, token = AuthToken.issue(user=jane, name="phone")
    _, bob_token = AuthToken.issue(user=bob, name="phone")
    url = f"{asgi_server}/api/v1/ws/connect?token="
    with (
        connect(url + token) as phone,
        connect(url + token, origin="http://localhost:3000") as browser,
        connect(url + bob_token) as other,
    ):
        result = notification_send(
            platform=platform,
            source="bulk:live",
            channels=["in_app"],
            recipients=[Recipient(user_id=jane.pk)],
            message=Message(title="Maintenance tonight", body="Back at 1 AM.", level="warning"),
        )
        assert result.sent == 1
        for ws in (phone, browser):
            event = json.loads(ws.recv(timeout=10))
            assert event["type"] == "CREATED_NOTIFICATION" and event["recipient_id"] == jane.pk
            assert event["payload"]["payload"] == {"headline": "Maintenance tonight", "message": "Back at 1 AM."}
            assert (event["payload"]["level"], event["payload"]["is_read"]) == ("warning", False)
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.3)  # exactly once
        with pytest.raises(TimeoutError):
            other.recv(timeout=0.3)

    # Refused handshakes: bad token, no token, no permission, a foreign Origin.
    nobody = make_user("nobody")
    _, no_permission = AuthToken.issue(user=nobody)
    nobody.memberships.update(is_active=False)
    for bad in (url + "not-a-valid-token-value", f"{asgi_server}/api/v1/ws/connect", url + no_permission):
        with pytest.raises(InvalidStatus) as refused:
            connect(bad)
        assert _status(refused) == 403
    with pytest.raises(InvalidStatus) as refused:
        connect(url + token, origin="https://evil.example")
    assert _status(refused) == 403

    time.sleep(0.2)  # let the server finish its log lines
    log = server_log.getvalue()
    assert "/api/v1/ws/connect?token=[redacted]" in log
    for secret in (token, bob_token, no_permission, "not-a-valid-token-value"):
        assert secret not in log


@pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="the server process needs the test database; SQLite's is in this process's memory",
)
def test_uvicorn_command_line_access_log_never_shows_the_token(platform, make_user):
    """The real `uvicorn` command: its own logging config first, then Django's on app import."""
    jane = make_user("jane")
    _, token = AuthToken.issue(user=jane)
    sock = _bound_socket()
    env = server_env()
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--fd", str(sock.fileno())]
    process = subprocess.Popen(
        [*command, "--lifespan", "off"],
        cwd=ROOT,
        env=env,
        pass_fds=[sock.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}/api/v1/ws/connect?token="
        deadline = time.monotonic() + 30
        while True:
            try:
                with connect(url + token, open_timeout=2) as ws:
                    ws.send(json.dumps({"type": "PING"}))
                    assert json.loads(ws.recv(timeout=5)) == {"type": "PONG"}
                break
            except (ConnectionRefusedError, TimeoutError, OSError):
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.2)
        with pytest.raises(InvalidStatus):
            connect(url + "wrong" + token)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
        sock.close()
    assert "token=[redacted]" in output, output
    assert token not in output


def server_env(**extra: str) -> dict:
    """The environment of a server process on this test's database and Redis."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        **extra,
    }


def _database_url() -> str:
    db = connection.settings_dict
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"

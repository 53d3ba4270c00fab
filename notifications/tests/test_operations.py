"""What operators are told: honest send counts, console backends flagged, health and metrics."""

from __future__ import annotations

import json
import socket

import pytest
from fcm_django.models import FCMDevice

from notifications.tests.bulk_helpers import V1, envelope
from notifications.tests.fakes import backend_settings

pytestmark = pytest.mark.django_db

CONSOLE = "notifications.backends.console.ConsoleBackend"


@pytest.fixture
def admin(make_user):
    return make_user("ops", role="ADMIN", admin=True)


@pytest.fixture
def client(api, admin):
    return api(admin)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- honest counts ------------------------------------------------------------------


@pytest.mark.usefixtures("loopback_only")
def test_bulk_email_to_a_server_refusing_connections_is_pending_not_sent_nor_failed(client, make_user, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _closed_port(), 2
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, email="notifications.backends.email.EmailBackend"
    )
    users = [make_user(f"learner{i}", email=f"learner{i}@example.org") for i in range(2)]

    r = client.post(
        f"{V1}/bulk-email",
        {"subject": "Hi", "message": "Hello", "user_ids": json.dumps([u.pk for u in users])},
        format="multipart",
    )

    assert envelope(r, 200, "Bulk email sent") == {"total_recipients": 2, "sent": 0, "failed": 0, "pending": 2}


def test_console_push_counts_device_tokens_and_a_user_without_a_device_is_not_sent(client, make_user, settings, capsys):
    settings.NOTIFICATION_BACKENDS = backend_settings(settings.NOTIFICATION_BACKENDS, push=CONSOLE)
    lonely = make_user("lonely")
    r = client.post(f"{V1}/bulk-push", {"title": "T", "message": "M", "user_ids": f"[{lonely.pk}]"}, format="multipart")
    assert envelope(r, 200, "Bulk push notification sent") == {
        "target_users": 1,
        "sent": 0,
        "failed": 0,
        "image": "",
        "pending": 0,
        "no_device": 1,
    }
    assert capsys.readouterr().out == ""  # nothing "delivered"

    phoned = make_user("phoned")
    for token in ("tok-a", "tok-b"):
        FCMDevice.objects.create(user=phoned, registration_id=token, type="android", active=True)
    FCMDevice.objects.create(user=phoned, registration_id="tok-old", type="android", active=False)
    r = client.post(
        f"{V1}/bulk-push",
        {"title": "T", "message": "M", "user_ids": json.dumps([lonely.pk, phoned.pk])},
        format="multipart",
    )
    data = envelope(r, 200, "Bulk push notification sent")
    assert (data["target_users"], data["sent"], data["failed"], data["no_device"]) == (2, 2, 0, 1)
    assert capsys.readouterr().out.count("[push] to=") == 2  # one line per active device

"""A scheduled in-app send reaches an open socket as CREATED_NOTIFICATION (bulk document §11)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from config.asgi import application
from notifications import scheduler
from notifications.models import AuthToken, ScheduledNotification
from notifications.tests.bulk_helpers import V1, future

pytestmark = pytest.mark.django_db(transaction=True)

MAINTENANCE = "The app will be unavailable 11 PM\u20131 AM UTC."


def _socket(raw: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        application,
        f"/api/v1/ws/connect?token={raw}",
        headers=[(b"host", b"testserver"), (b"origin", b"http://testserver")],
    )


def test_immediate_in_app_arrives_over_the_websocket_once_committed(make_user, api):
    student = make_user("learner", role="STUDENT")
    admin = make_user("ops", role="ADMIN", admin=True)
    _, raw = AuthToken.issue(user=student, name="ws")
    sender = api(admin)

    async def scenario():
        socket = _socket(raw)
        connected, _ = await socket.connect()
        assert connected
        from channels.db import database_sync_to_async

        r = await database_sync_to_async(sender.post)(
            f"{V1}/bulk-in-app",
            {"title": "Maintenance tonight", "message": MAINTENANCE, "role": "STUDENT"},
            format="json",
        )
        assert r.status_code == 200
        event = await socket.receive_json_from(timeout=5)
        assert await socket.receive_nothing(timeout=0.2)  # once
        await socket.disconnect()
        return event

    event = async_to_sync(scenario)()
    assert event["type"] == "CREATED_NOTIFICATION" and event["recipient_id"] == student.pk
    assert event["payload"]["payload"] == {"headline": "Maintenance tonight", "message": MAINTENANCE}
    assert event["payload"]["type"] == "system_alert" and event["payload"]["level"] == "info"


def test_scheduled_in_app_arrives_over_the_websocket(make_user, api):
    student = make_user("learner", role="STUDENT")
    admin = make_user("ops", role="ADMIN", admin=True)
    r = api(admin).post(
        f"{V1}/bulk-in-app",
        {
            "title": "New practice unlocked",
            "message": "Unit 4",
            "user_ids": [student.pk],
            "level": "success",
            "scheduled_at": future(),
        },
        format="json",
    )
    job = ScheduledNotification.objects.get(pk=r.json()["data"]["id"])
    _, raw = AuthToken.issue(user=student, name="ws")

    async def scenario():
        socket = _socket(raw)
        connected, _ = await socket.connect()
        assert connected
        assert await socket.receive_nothing(timeout=0.2)  # nothing before its time
        from channels.db import database_sync_to_async

        await database_sync_to_async(scheduler.sweep)(now=job.due_at + timedelta(seconds=1))
        event = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return event

    event = async_to_sync(scenario)()
    assert event["type"] == "CREATED_NOTIFICATION" and event["recipient_id"] == student.pk
    payload = event["payload"]
    assert set(payload) == {
        "id",
        "recipient_id",
        "type",
        "level",
        "delivery_channel",
        "payload",
        "is_read",
        "timestamp",
    }
    assert payload["payload"] == {"headline": "New practice unlocked", "message": "Unit 4"}
    assert (payload["type"], payload["level"], payload["delivery_channel"], payload["is_read"]) == (
        "system_alert",
        "success",
        "in_app",
        False,
    )
    job.refresh_from_db()
    assert job.status == "sent"

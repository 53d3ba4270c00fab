"""The core's lifecycle announcements, as a subscribed receiver sees them over HTTP.

Each test drives one real path (dispatch, the scheduled-job sweep, the
builder) and checks the event that reaches a `standardwebhooks`-verifying
receiver on loopback.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from builder.tests.conftest import BASE as BUILDER
from builder.tests.conftest import custom
from notifications import scheduler
from notifications.models import Notification, Role, ScheduledNotification
from notifications.pipeline import Message, Recipient, notification_send
from webhooks.tests.receiver import WebhookReceiver
from webhooks.tests.test_webhooks import BASE, register

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin(make_user):
    return make_user("web.admin", role="ADMIN", admin=True)


@pytest.fixture
def client(admin, api):
    return api(admin, keyword="Token")


@pytest.fixture
def receiver(settings, client):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    with WebhookReceiver() as receiver:
        yield receiver


def subscribe(client, receiver, event_types):
    receiver.secret = register(client, receiver.url, event_types)["secret"]


def test_dispatch_and_write_announce_final_outcomes(client, receiver, platform, make_user):
    subscribe(client, receiver, ["delivery.sent", "delivery.failed"])
    reached = make_user("reached", email="reached@example.com")
    nowhere = make_user("nowhere", email="")
    notification_send(
        platform=platform,
        source="course:7",
        channels=["email"],
        recipients=[Recipient(user_id=reached.pk), Recipient(user_id=nowhere.pk)],
        message=Message(title="Hello", body="Hi"),
    )
    (sent,) = receiver.events("delivery.sent")
    (failed,) = receiver.events("delivery.failed")
    row = Notification.objects.get(user=reached)
    assert sent["data"] == {
        "notification_id": str(row.pk),
        "channel": "email",
        "source": "course:7",
        "notification_type": row.notification_type,
        "user_id": str(reached.pk),
        "delivery_status": "sent",
        "attempts": 1,
        "error": "",
        "provider_message_id": row.provider_message_id,
    }
    assert failed["data"]["user_id"] == str(nowhere.pk) and failed["data"]["delivery_status"] == "failed"
    assert failed["data"]["error"]


def test_a_finished_scheduled_job_is_announced(client, receiver, platform, make_user):
    subscribe(client, receiver, ["scheduled_job.finished"])
    make_user("learner")
    now = timezone.now() - timedelta(seconds=1)
    job = ScheduledNotification.objects.create(
        platform=platform,
        channel="in_app",
        title="Soon",
        message="m",
        target_role=Role.STUDENT,
        scheduled_at=now,
        due_at=now,
    )
    scheduler.sweep()
    (finished,) = receiver.events("scheduled_job.finished")
    assert finished["data"]["job_id"] == str(job.pk) and finished["data"]["status"] == "sent"
    assert finished["data"]["sent_count"] == finished["data"]["total_recipients"] >= 1


def test_a_completed_build_is_announced(client, receiver, platform, make_user):
    subscribe(client, receiver, ["build.completed"])
    make_user("jane", email="jane@example.com")
    built = client.post(BUILDER + "preview/", custom(sources=[{"type": "username", "data": "jane"}]), format="json")
    assert built.status_code == 200, built.json()
    build_id = built.json()["build_id"]
    assert client.post(BUILDER + "send/", {"build_id": build_id}, format="json").status_code == 200
    (completed,) = receiver.events("build.completed")
    assert completed["data"]["build_id"] == build_id and completed["data"]["status"] == "completed"
    assert client.get(f"{BASE}").json()[0]["event_types"] == ["build.completed"]

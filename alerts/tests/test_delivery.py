"""Timed notifications: the sweep claims due alerts and the pipeline delivers them once.

The WebSocket tests run a real client against the ASGI application over the
real channel layer (Redis); the sweep is called as beat would call it, about
every quarter second here, and Celery runs eagerly.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from alerts import services
from alerts.models import Alert
from notifications import scheduler
from notifications.backends import locmem
from notifications.models import Channel, DeliveryStatus, Notification

SOON = timedelta(seconds=1.5)


def _iso(value):
    return value.isoformat().replace("+00:00", "Z")


def _deliveries(alert_id):
    return Notification.objects.filter(source__startswith=f"alert:{alert_id}:")


# --- over the WebSocket ---------------------------------------------------------------


class Socket:
    """A WebSocket client of `/api/v1/ws/connect` plus the sweep, as beat runs it."""

    def __init__(self, token: str):
        from config.asgi import application

        self.communicator = WebsocketCommunicator(
            application, f"/api/v1/ws/connect?token={token}", headers=[(b"origin", b"http://testserver")]
        )

    async def __aenter__(self):
        connected, _ = await self.communicator.connect()
        assert connected
        return self

    async def __aexit__(self, *exc):
        await self.communicator.disconnect()

    async def sweep_for(self, seconds: float, *, until: int | None = None) -> list[dict]:
        """Sweep about every 0.25 s for `seconds` (or until `until` messages came); what the socket got."""
        received = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (until is None or len(received) < until):
            await database_sync_to_async(scheduler.sweep)()
            while not await self.communicator.receive_nothing(timeout=0.25):
                received.append(await self.communicator.receive_json_from())
        return received


def _run(scenario):
    async_to_sync(scenario)()


@pytest.fixture
def alice_token(alice):
    from notifications.models import AuthToken

    return AuthToken.issue(user=alice, name="ws")[1]


@database_sync_to_async
def _call(client, method, path, body=None):
    response = getattr(client, method)(path, body or {}, format="json")
    assert response.status_code in (200, 201), response.json()
    return response.json()["data"]


@pytest.mark.django_db(transaction=True)
def test_notify_at_reaches_the_websocket_once(client, alice, alice_token):
    async def scenario():
        async with Socket(alice_token) as socket:
            notify_at = timezone.now() + SOON
            alert = await _call(
                client,
                "post",
                "/alerts",
                {
                    "title": "Quarterly Inventory Audit",
                    "message": "Complete inventory count for all warehouses",
                    "isEvent": True,
                    "scheduledAt": _iso(notify_at + timedelta(days=1)),
                    "notifyAt": _iso(notify_at),
                },
            )
            # Before notifyAt the sweeps find nothing to send.
            assert await socket.sweep_for(0.5) == []
            received = await socket.sweep_for(3, until=1)
            assert len(received) == 1
            message = received[0]
            assert message["type"] == "CREATED_NOTIFICATION"
            assert message["recipient_id"] == alice.pk
            assert message["payload"]["payload"]["headline"] == "Quarterly Inventory Audit"
            assert message["payload"]["payload"]["message"].startswith("Complete inventory count for all warehouses")
            assert message["payload"]["type"] == "event_reminder"
            # Later sweeps, a re-run of the same schedule and a replayed claim send nothing more.
            await database_sync_to_async(services.alert_notify)(alert_id=alert["id"])
            assert await socket.sweep_for(1) == []
            return alert

    _run(scenario)
    alert = Alert.objects.get()
    assert alert.notified_at is not None and alert.claimed_until is None
    row = _deliveries(alert.pk).get()
    assert (row.channel, row.user, row.delivery_status) == (Channel.IN_APP, alice, DeliveryStatus.SENT)
    # Delivered within about a second of notifyAt (the sweep runs every quarter second here).
    assert row.sent_at - alert.notify_at < timedelta(seconds=2)


@pytest.mark.django_db(transaction=True)
def test_reschedule_into_the_future_notifies_once_more(client, alice_token):
    async def scenario():
        async with Socket(alice_token) as socket:
            alert = await _call(
                client, "post", "/alerts", {"title": "Audit", "message": "m", "notifyAt": _iso(timezone.now())}
            )
            assert len(await socket.sweep_for(1, until=1)) == 1
            # Moving notifyAt into another past time does not send again ...
            earlier = _iso(timezone.now() - timedelta(hours=1))
            await _call(client, "put", f"/alerts/{alert['id']}", {"notifyAt": earlier})
            assert await socket.sweep_for(0.75) == []
            # ... moving it into the future does, exactly once, when it comes.
            await _call(client, "put", f"/alerts/{alert['id']}", {"notifyAt": _iso(timezone.now() + SOON)})
            assert await socket.sweep_for(0.5) == []
            received = await socket.sweep_for(3, until=1)
            assert [m["payload"]["payload"]["headline"] for m in received] == ["Audit"]
            assert await socket.sweep_for(0.75) == []
            return alert

    _run(scenario)
    alert = Alert.objects.get()
    assert sorted(_deliveries(alert.pk).values_list("source", flat=True)) == [
        f"alert:{alert.pk}:0",
        f"alert:{alert.pk}:1",
    ]


@pytest.mark.django_db(transaction=True)
def test_moving_a_pending_notification_delivers_at_the_new_time_only(client, alice_token):
    async def scenario():
        async with Socket(alice_token) as socket:
            alert = await _call(
                client,
                "post",
                "/alerts",
                {"title": "Loan due", "message": "m", "notifyAt": _iso(timezone.now() + SOON)},
            )
            await _call(client, "put", f"/alerts/{alert['id']}", {"notifyAt": _iso(timezone.now() + 2 * SOON)})
            # The old time passes without a notification ...
            assert await socket.sweep_for(1.6) == []
            # ... the new one brings exactly one.
            assert len(await socket.sweep_for(3, until=1)) == 1

    _run(scenario)
    assert _deliveries(Alert.objects.get().pk).count() == 1


@pytest.mark.django_db(transaction=True)
def test_deleted_alert_is_not_notified(client, alice_token):
    async def scenario():
        async with Socket(alice_token) as socket:
            alert = await _call(
                client,
                "post",
                "/alerts",
                {"title": "Cancelled audit", "message": "m", "notifyAt": _iso(timezone.now() + timedelta(seconds=1))},
            )
            await _call(client, "delete", f"/alerts/{alert['id']}")
            assert await socket.sweep_for(2) == []

    _run(scenario)
    alert = Alert.objects.get()
    assert alert.deleted_at is not None and alert.notified_at is None
    assert not _deliveries(alert.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_other_users_sockets_get_nothing(api, bob, alice_token, client):
    from notifications.models import AuthToken

    bob_token = AuthToken.issue(user=bob, name="ws")[1]

    async def scenario():
        async with Socket(alice_token) as alice_socket, Socket(bob_token) as bob_socket:
            await _call(client, "post", "/alerts", {"title": "Alice only", "message": "m"})
            assert len(await alice_socket.sweep_for(1, until=1)) == 1
            assert await bob_socket.communicator.receive_nothing(timeout=0.3)

    _run(scenario)


# --- scheduling rules without a socket -------------------------------------------------------


def test_alert_without_notify_at_is_due_at_once(create):
    plain = create()
    already_read = create(isRead=True)
    event = create(isEvent=True, scheduledAt="2030-01-01T09:00:00Z")
    rows = Alert.objects.in_bulk([plain["id"], already_read["id"], event["id"]])
    assert rows[plain["id"]].due_at == rows[plain["id"]].created_at
    assert rows[already_read["id"]].due_at is None
    # An event without notifyAt reminds at its own time.
    assert rows[event["id"]].due_at == rows[event["id"]].scheduled_at
    assert scheduler.sweep()["alerts"] == 1
    assert [m["title"] for m in locmem.outbox["email"]] == []
    assert _deliveries(plain["id"]).get().channel == Channel.IN_APP


def test_clearing_notify_at_cancels_a_pending_notification(client, create):
    alert = create(notifyAt="2030-01-01T09:00:00Z")
    client.put(f"/alerts/{alert['id']}", {"notifyAt": None}, format="json")
    assert Alert.objects.get(pk=alert["id"]).due_at is None
    event = create(isEvent=True, scheduledAt="2030-01-02T09:00:00Z", notifyAt="2030-01-01T09:00:00Z")
    client.put(f"/alerts/{event['id']}", {"notifyAt": None}, format="json")
    # An event falls back to its own time.
    assert Alert.objects.get(pk=event["id"]).due_at.isoformat() == "2030-01-02T09:00:00+00:00"


def test_claims_are_leased_and_skip_what_others_hold(create):
    alert_id = create(notifyAt="2020-01-01T00:00:00Z")["id"]
    now = timezone.now()
    lease = timedelta(minutes=5)
    assert services.alerts_claim_due(now=now, limit=10, lease=lease) == [alert_id]
    # A second sweep while the lease holds claims nothing.
    assert services.alerts_claim_due(now=now, limit=10, lease=lease) == []
    # A worker that died leaves the lease to run out; then the alert is claimed again.
    later = now + lease + timedelta(seconds=1)
    assert services.alerts_claim_due(now=later, limit=10, lease=lease) == [alert_id]
    services.alert_notify(alert_id=alert_id)
    services.alert_notify(alert_id=alert_id)  # the first worker wakes up and runs it too
    assert _deliveries(alert_id).count() == 1
    assert services.alerts_claim_due(now=later + lease * 2, limit=10, lease=lease) == []


def test_sweep_through_celery_beat_task(create):
    from notifications.tasks import sweep_due_work

    alert_id = create(notifyAt="2020-01-01T00:00:00Z")["id"]
    assert sweep_due_work.delay() is not None
    assert Alert.objects.get(pk=alert_id).notified_at is not None
    assert _deliveries(alert_id).filter(delivery_status=DeliveryStatus.SENT).count() == 1


def test_claim_moved_after_claiming_is_not_sent_early(client, create):
    alert_id = create(notifyAt="2020-01-01T00:00:00Z")["id"]
    assert services.alerts_claim_due(now=timezone.now(), limit=10, lease=timedelta(minutes=5)) == [alert_id]
    client.put(f"/alerts/{alert_id}", {"notifyAt": "2030-01-01T00:00:00Z"}, format="json")
    assert services.alert_notify(alert_id=alert_id) is None
    assert not _deliveries(alert_id).exists()
    alert = Alert.objects.get(pk=alert_id)
    assert (alert.notified_at, alert.notify_generation) == (None, 1)


# --- channels by type -------------------------------------------------------------------


@pytest.fixture
def push_backend(settings):
    # Push rows carry the channel "push_notification" while NOTIFICATION_BACKENDS
    # names the backend "push"; give the test backend under both names.
    settings.NOTIFICATION_BACKENDS = {
        **settings.NOTIFICATION_BACKENDS,
        Channel.PUSH: {"BACKEND": "notifications.backends.locmem.LocmemBackend", "OPTIONS": {}},
    }


@pytest.fixture
def device(alice):
    from fcm_django.models import FCMDevice

    return FCMDevice.objects.create(user=alice, registration_id="token-alice-phone", type="android", active=True)


def _channels_of(alert_id):
    return set(_deliveries(alert_id).values_list("channel", flat=True))


def test_channels_follow_the_type(create, device, push_backend):
    info, warning, critical = create(type="info"), create(type="warning"), create(type="critical")
    scheduler.sweep()
    assert _channels_of(info["id"]) == {Channel.IN_APP}
    assert _channels_of(warning["id"]) == {Channel.IN_APP, Channel.PUSH}
    assert _channels_of(critical["id"]) == {Channel.IN_APP, Channel.PUSH, Channel.EMAIL}
    assert [m["title"] for m in locmem.outbox["email"]] == ["Low Stock Alert"]
    assert [m["address"] for m in locmem.outbox["email"]] == ["alice@example.com"]
    assert len(locmem.outbox["push"]) == 2  # the backend is named by its settings key


def test_channels_need_a_device_an_address_and_push_enabled(create, alice, platform, push_backend, device):
    device.active = False
    device.save()
    alice.email = ""
    alice.save()
    critical = create(type="critical")
    scheduler.sweep()
    assert _channels_of(critical["id"]) == {Channel.IN_APP}
    device.active = True
    device.save()
    platform.push_enabled = False
    platform.save()
    again = create(type="critical")
    scheduler.sweep()
    assert _channels_of(again["id"]) == {Channel.IN_APP}


def test_channels_by_type_is_a_setting(settings, create):
    settings.ALERTS_CHANNELS_BY_TYPE = {**settings.ALERTS_CHANNELS_BY_TYPE, "info": ["in_app", "email", "sms"]}
    info = create(type="info")
    scheduler.sweep()
    assert _channels_of(info["id"]) == {Channel.IN_APP, Channel.EMAIL, Channel.SMS}
    assert locmem.outbox["sms"][0]["body"].startswith("Item 'Laptop Dell XPS 15'")


def test_event_email_says_when_in_the_users_zone(create, alice):
    alice.timezone = "Africa/Addis_Ababa"
    alice.save()
    create(
        type="critical",
        title="Quarterly Inventory Audit",
        message="Complete inventory count for all warehouses",
        isEvent=True,
        scheduledAt="2026-06-15T09:00:00Z",
        notifyAt="2026-06-14T09:00:00Z",
    )
    scheduler.sweep()
    (mail,) = locmem.outbox["email"]
    assert mail["body"] == (
        "Complete inventory count for all warehouses\n\nWhen: Mon 15 Jun 2026, 12:00 (Africa/Addis_Ababa)"
    )
    assert mail["html"].startswith("<p><strong>Quarterly Inventory Audit</strong></p>")


def test_a_failed_channel_does_not_resend_the_others(create, alice):
    locmem.fail_for["alice@example.com"] = "mailbox full"
    critical = create(type="critical")
    scheduler.sweep()
    assert dict(_deliveries(critical["id"]).values_list("channel", "delivery_status")) == {
        Channel.IN_APP: DeliveryStatus.SENT,
        Channel.EMAIL: DeliveryStatus.FAILED,
    }
    assert Alert.objects.get(pk=critical["id"]).notified_at is not None


def test_settings_are_checked(settings):
    from alerts.checks import check_alert_settings

    assert check_alert_settings() == []
    settings.ALERTS_CHANNELS_BY_TYPE = {"urgent": ["in_app"], "info": ["pager"]}
    settings.ALERTS_ARCHIVE_AFTER_DAYS = 0
    assert [e.id for e in check_alert_settings()] == ["alerts.E002", "alerts.E003", "alerts.E004"]


def test_push_needs_a_device_on_the_alerts_platform(create, alice, device, push_backend):
    from notifications.models import DeviceRegistration
    from notifications.tests.factories import PlatformFactory

    # Registered by another platform's app only: this platform's alert has no push to make.
    DeviceRegistration.objects.create(device=device, platform=PlatformFactory(key="other-school"))
    warning = create(type="warning")
    scheduler.sweep()
    assert _channels_of(warning["id"]) == {Channel.IN_APP}
    assert "push" not in locmem.outbox or not locmem.outbox["push"]


def test_critical_email_refused_for_good_falls_back_to_sms(create, alice, platform):
    # Alerts are one of the five send paths: the platform's policy for the type holds here too.
    from templates_app.models import NotificationTemplate

    NotificationTemplate.objects.create(
        platform=platform, type="alert", is_custom=True, name="Alerts", delivery_policy={"fallback": {"email": "sms"}}
    )
    locmem.fail_for["alice@example.com"] = "550 5.1.1 mailbox unavailable"
    alert = create(type="critical")
    scheduler.sweep()

    rows = {n.channel: n for n in _deliveries(alert["id"])}
    assert rows[Channel.EMAIL].delivery_status == DeliveryStatus.FAILED
    assert (rows[Channel.SMS].rule, rows[Channel.SMS].delivery_status) == ("fallback", DeliveryStatus.SENT)
    assert [m["address"] for m in locmem.outbox["sms"]] == [alice.phone_number]
    assert locmem.outbox["sms"][0]["body"].startswith("Item 'Laptop Dell XPS 15'")
    scheduler.sweep()
    assert len(locmem.outbox["sms"]) == 1


def _alert_policy(platform, fallback):
    from templates_app.models import NotificationTemplate

    NotificationTemplate.objects.create(
        platform=platform, type="alert", is_custom=True, name="Alerts", delivery_policy={"fallback": fallback}
    )


def test_push_without_a_device_falls_back_to_sms_once(create, alice, platform, push_backend):
    # "Push, else SMS" holds for alerts as for the other send paths: alice has no device.
    _alert_policy(platform, {Channel.PUSH: Channel.SMS})
    alert = create(type="warning")
    scheduler.sweep()

    rows = {n.channel: n for n in _deliveries(alert["id"])}
    assert set(rows) == {Channel.IN_APP, Channel.PUSH, Channel.SMS}
    assert (rows[Channel.PUSH].delivery_status, rows[Channel.PUSH].error) == (
        DeliveryStatus.FAILED,
        "No active push device",
    )
    assert (rows[Channel.SMS].rule, rows[Channel.SMS].delivery_status) == ("fallback", DeliveryStatus.SENT)
    assert [m["address"] for m in locmem.outbox["sms"]] == [alice.phone_number]
    assert locmem.outbox["sms"][0]["body"].startswith("Item 'Laptop Dell XPS 15'")
    assert not locmem.outbox.get("push")
    assert Alert.objects.get(pk=alert["id"]).notified_at is not None
    scheduler.sweep()
    assert len(locmem.outbox["sms"]) == 1


def test_push_with_a_device_does_not_fall_back(create, alice, platform, push_backend, device):
    _alert_policy(platform, {Channel.PUSH: Channel.SMS})
    alert = create(type="warning")
    scheduler.sweep()
    assert _channels_of(alert["id"]) == {Channel.IN_APP, Channel.PUSH}
    assert len(locmem.outbox["push"]) == 1
    assert not locmem.outbox.get("sms")


def test_email_without_an_address_falls_back_to_sms(create, alice, platform, push_backend, device):
    _alert_policy(platform, {Channel.EMAIL: Channel.SMS})
    alice.email = ""
    alice.save()
    alert = create(type="critical")
    scheduler.sweep()

    rows = {n.channel: n for n in _deliveries(alert["id"])}
    assert (rows[Channel.EMAIL].delivery_status, rows[Channel.EMAIL].error) == (
        DeliveryStatus.FAILED,
        "User has no email address",
    )
    assert (rows[Channel.SMS].rule, rows[Channel.SMS].delivery_status) == ("fallback", DeliveryStatus.SENT)
    assert [m["address"] for m in locmem.outbox["sms"]] == [alice.phone_number]

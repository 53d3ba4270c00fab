"""Push over HTTP to a local server answering like Google OAuth2 + FCM HTTP v1."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from fcm_django.models import FCMDevice

from notifications.backends.push import FCMBackend
from notifications.models import DeliveryStatus, DeviceRegistration, Membership, Notification
from notifications.pipeline import Message, Recipient, notification_send
from notifications.pipeline.write import deliveries_write
from notifications.tests.factories import PlatformFactory
from notifications.tests.fakes import backend_settings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_only")]

PUSH_BACKEND = "notifications.backends.push.FCMBackend"


@pytest.fixture
def fcm(settings, fcm_server):
    settings.FCM = fcm_server.settings
    settings.NOTIFICATION_BACKENDS = backend_settings(settings.NOTIFICATION_BACKENDS, push=PUSH_BACKEND)
    return fcm_server


def device(user, token, *, active=True, kind="android"):
    return FCMDevice.objects.create(user=user, registration_id=token, type=kind, active=active, name=token)


def push(platform, source, users, **message):
    fields = {"title": "Practice reminder", "body": "Complete today's practice.", **message}
    return notification_send(
        platform=platform,
        source=source,
        channels=["push_notification"],
        recipients=[Recipient(user_id=u.id) for u in users],
        message=Message(**fields),
    )


def row(source, user) -> Notification:
    return Notification.objects.get(source=source, recipient_key=f"user:{user.id}")


def test_every_active_device_gets_the_message(fcm, platform, make_user):
    jane = make_user("jane")
    device(jane, "tok-phone")
    device(jane, "tok-tablet", kind="ios")
    device(jane, "tok-old", active=False)

    result = push(
        platform,
        "bulk:push1",
        [jane],
        image_url="https://cdn.example.com/thumb.jpg",
        data={"course_id": 42, "kind": "reminder", "tags": ["a", "b"]},
    )

    assert (result.sent, result.failed, result.units_sent, result.units_failed) == (1, 0, 2, 0)
    assert sorted(fcm.tokens_sent_to()) == ["tok-phone", "tok-tablet"]
    delivery = row("bulk:push1", jane)
    assert (delivery.units_sent, delivery.units_failed) == (2, 0)
    assert delivery.provider_message_id.startswith(f"projects/{fcm.project_id}/messages/")

    message = next(m for m in fcm.messages if m["token"] == "tok-phone")
    assert message["notification"] == {
        "title": "Practice reminder",
        "body": "Complete today's practice.",
        "image": "https://cdn.example.com/thumb.jpg",
    }
    assert message["data"] == {
        "course_id": "42",
        "kind": "reminder",
        "tags": json.dumps(["a", "b"]),
        "notification_id": str(delivery.id),
    }
    assert message["apns"]["fcm_options"]["image"] == "https://cdn.example.com/thumb.jpg"
    assert message["apns"]["payload"]["aps"]["mutable-content"] == 1


def test_oauth_token_comes_from_the_service_account_jwt_exchange(fcm, platform, make_user):
    jane = make_user("jane")
    device(jane, "tok-1")
    push(platform, "bulk:auth", [jane])

    [token_call] = fcm.requests_to("/token")
    assert token_call.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    [send_call] = fcm.requests_to(":send")
    bearer = send_call.headers["authorization"].removeprefix("Bearer ")
    assert bearer in fcm.issued
    assert send_call.path == f"/v1/projects/{fcm.project_id}/messages:send"

    # The token is reused by the next send instead of exchanged again.
    push(platform, "bulk:auth2", [jane])
    assert len(fcm.requests_to("/token")) == 1


def test_a_refused_access_token_is_replaced_and_the_send_completes(fcm, platform, make_user):
    jane = make_user("jane")
    device(jane, "tok-1")
    device(jane, "tok-2")
    push(platform, "bulk:before", [jane])
    fcm.revoke_access_tokens()
    fcm.requests.clear()
    fcm.accepted.clear()

    result = push(platform, "bulk:after", [jane])

    assert (result.sent, result.units_sent, result.units_failed) == (1, 2, 0)
    assert len(fcm.requests_to("/token")) == 1
    # Refused with the old access token, then accepted with the new one, once per device.
    assert sorted(fcm.accepted) == ["tok-1", "tok-2"]
    assert len(fcm.requests_to(":send")) >= 3


def test_user_without_an_active_device_is_a_failed_delivery(fcm, platform, make_user):
    jane = make_user("jane")
    device(jane, "tok-off", active=False)
    result = push(platform, "bulk:nodevice", [jane])
    assert (result.sent, result.failed, result.units_sent, result.units_failed) == (0, 1, 0, 0)
    assert row("bulk:nodevice", jane).error == "No active push device"
    assert fcm.requests == []


def test_unregistered_token_deactivates_the_device_for_good(fcm, platform, make_user):
    jane = make_user("jane")
    alive = device(jane, "tok-alive")
    dead = device(jane, "tok-dead")
    fcm.fail("tok-dead", "unregistered")

    result = push(platform, "bulk:unreg", [jane])

    # Delivered to the user: one of two devices took it.
    assert (result.sent, result.units_sent, result.units_failed) == (1, 1, 1)
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.active is False and alive.active is True

    fcm.requests.clear()
    push(platform, "bulk:unreg-later", [jane])
    assert fcm.tokens_sent_to() == ["tok-alive"]


def test_only_device_unregistered_then_no_active_device(fcm, platform, make_user):
    jane = make_user("jane")
    device(jane, "tok-dead")
    fcm.fail("tok-dead", "unregistered")

    first = push(platform, "bulk:only-dead", [jane])
    assert (first.sent, first.failed, first.units_failed) == (0, 1, 1)
    assert "UNREGISTERED" in row("bulk:only-dead", jane).error
    assert row("bulk:only-dead", jane).attempts == 1  # not retried

    fcm.requests.clear()
    second = push(platform, "bulk:only-dead-later", [jane])
    assert second.failed == 1
    assert row("bulk:only-dead-later", jane).error == "No active push device"
    assert fcm.requests == []


def test_invalid_registration_token_deactivates_the_device(fcm, platform, make_user):
    jane = make_user("jane")
    bad = device(jane, "tok-garbled")
    fcm.fail("tok-garbled", "invalid_token")
    push(platform, "bulk:invalid", [jane])
    bad.refresh_from_db()
    assert bad.active is False
    assert "INVALID_ARGUMENT" in row("bulk:invalid", jane).error


def test_other_invalid_argument_keeps_the_device_and_is_not_retried(fcm, platform, make_user):
    jane = make_user("jane")
    kept = device(jane, "tok-kept")
    fcm.fail("tok-kept", "invalid_payload")
    result = push(platform, "bulk:payload", [jane])
    kept.refresh_from_db()
    assert kept.active is True
    assert result.failed == 1
    assert row("bulk:payload", jane).attempts == 1
    assert len(fcm.requests_to(":send")) == 1


def test_users_are_told_apart_in_one_batch(fcm, platform, make_user):
    jane, bob, eve = make_user("jane"), make_user("bob"), make_user("eve")
    device(jane, "tok-jane")
    device(bob, "tok-bob")
    fcm.fail("tok-bob", "sender_mismatch")
    result = push(platform, "bulk:three", [jane, bob, eve])
    assert (result.sent, result.failed) == (1, 2)
    assert row("bulk:three", jane).delivery_status == DeliveryStatus.SENT
    assert "SENDER_ID_MISMATCH" in row("bulk:three", bob).error
    assert row("bulk:three", eve).error == "No active push device"
    assert FCMDevice.objects.get(registration_id="tok-bob").active is False


# -- the backend on its own: what is worth retrying -----------------------------------


def deliveries(platform, source, users):
    deliveries_write(
        platform=platform,
        source=source,
        channels=["push_notification"],
        recipients=[Recipient(user_id=u.id) for u in users],
        message=Message(title="Hi", body="Hi"),
    )
    return list(Notification.objects.filter(source=source).select_related("user"))


def test_429_is_retryable_after_retry_after(fcm, platform, make_user):
    jane = make_user("jane")
    device(jane, "tok-busy")
    fcm.fail("tok-busy", "quota", retry_after="120")
    [(_, result)] = list(FCMBackend().send(deliveries(platform, "direct:429", [jane])))
    assert not result.ok and result.retryable
    assert result.retry_after == 120
    assert "QUOTA_EXCEEDED" in result.error
    assert (result.units_sent, result.units_failed) == (0, 1)
    assert FCMDevice.objects.get(registration_id="tok-busy").active is True


def test_500_is_retryable(fcm, platform, make_user):
    jane = make_user("jane")
    device(jane, "tok-500")
    fcm.fail("tok-500", "internal")
    [(_, result)] = list(FCMBackend().send(deliveries(platform, "direct:500", [jane])))
    assert not result.ok and result.retryable and result.retry_after is None
    assert "INTERNAL" in result.error


def test_timeout_is_retryable(fcm, platform, make_user, settings):
    jane = make_user("jane")
    device(jane, "tok-slow")
    settings.FCM = {**fcm.settings, "TIMEOUT": 0.5}
    fcm.reply_next(200, {"name": "late"}, delay=1.5, path=":send")
    [(_, result)] = list(FCMBackend().send(deliveries(platform, "direct:slow", [jane])))
    assert not result.ok and result.retryable and "timed out" in result.error


def test_partial_device_failure_is_sent_not_retried(fcm, platform, make_user):
    jane = make_user("jane")
    device(jane, "tok-ok")
    device(jane, "tok-503")
    fcm.fail("tok-503", "unavailable", retry_after="10")
    [(_, result)] = list(FCMBackend().send(deliveries(platform, "direct:partial", [jane])))
    # Retrying would repeat the push on the device that already shows it.
    assert result.ok and not result.retryable
    assert (result.units_sent, result.units_failed) == (1, 1)


def test_rejected_credentials_fail_without_sending(fcm, platform, make_user, settings):
    jane = make_user("jane")
    device(jane, "tok-1")
    info = {**fcm.service_account_info, "client_email": "someone-else@example.iam.gserviceaccount.com"}
    settings.FCM = {**fcm.settings, "SERVICE_ACCOUNT_KEY": json.dumps(info)}
    [(_, result)] = list(FCMBackend().send(deliveries(platform, "direct:creds", [jane])))
    assert not result.ok and not result.retryable
    assert "credentials rejected" in result.error
    assert fcm.requests_to(":send") == []


def test_service_account_key_may_be_a_file(fcm, platform, make_user, settings, tmp_path):
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(fcm.service_account_info))
    settings.FCM = {**fcm.settings, "SERVICE_ACCOUNT_KEY": str(key_file)}
    jane = make_user("jane")
    device(jane, "tok-file")
    [(_, result)] = list(FCMBackend().send(deliveries(platform, "direct:file", [jane])))
    assert result.ok


def test_missing_key_is_a_configuration_error(settings):
    settings.FCM = {"SERVICE_ACCOUNT_KEY": "", "ENDPOINT": "http://127.0.0.1:1"}
    with pytest.raises(ImproperlyConfigured, match="SERVICE_ACCOUNT_KEY"):
        FCMBackend()


def test_push_reaches_only_devices_registered_on_the_sending_platform(fcm, platform, make_user):
    """A learner of two platforms: each platform's push goes to its own app's tokens (and unregistered ones)."""
    other = PlatformFactory(key="other-school")
    jane = make_user("jane")
    Membership.objects.create(user=jane, platform=other)
    DeviceRegistration.objects.create(device=device(jane, "tok-acme"), platform=platform)
    DeviceRegistration.objects.create(device=device(jane, "tok-other"), platform=other)
    device(jane, "tok-unregistered")  # fcm-django's own views: serves every platform of its user
    # One batch holding both platforms' deliveries.
    batch = deliveries(platform, "direct:a", [jane]) + deliveries(other, "direct:b", [jane])
    results = [result for _, result in FCMBackend().send(batch)]
    assert [(r.ok, r.units_sent) for r in results] == [(True, 2), (True, 2)]
    sent = {(m["data"]["notification_id"], m["token"]) for m in fcm.messages}
    assert sent == {
        (str(batch[0].id), "tok-acme"),
        (str(batch[0].id), "tok-unregistered"),
        (str(batch[1].id), "tok-other"),
        (str(batch[1].id), "tok-unregistered"),
    }

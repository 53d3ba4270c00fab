"""Email through an anymail provider, its delivery receipts, and the suppression list they feed.

The provider is Postmark, on loopback (`fakes.PostmarkServer`), called by
django-anymail's own Postmark backend. Receipts are anymail's test webhook
payloads (Postmark's and Mailgun's, as in anymail's test suite), posted over
HTTP to our endpoint with the provider's authentication.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from notifications import lifecycle
from notifications.backends.email import EmailBackend
from notifications.models import DeliveryReceipt, DeliveryStatus, Notification, Suppression
from notifications.pipeline import Message, Recipient, notification_send
from notifications.tests.factories import PlatformFactory
from notifications.tests.fakes import PostmarkServer, backend_settings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_only")]

SECRET = "receipts:5ecret-pass"
SIGNING_KEY = "TEST_WEBHOOK_SIGNING_KEY"
POSTMARK_URL = "/webhooks/email/postmark/tracking/"
MAILGUN_URL = "/webhooks/email/mailgun/tracking/"


@pytest.fixture
def postmark(settings):
    """The project's mail goes to Postmark (on loopback) through anymail; receipts are on."""
    with PostmarkServer() as server:
        settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
        settings.ANYMAIL = {
            **server.anymail_settings,
            "WEBHOOK_SECRET": SECRET,
            "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY,
        }
        settings.NOTIFICATION_BACKENDS = backend_settings(
            settings.NOTIFICATION_BACKENDS, email="notifications.backends.email.EmailBackend"
        )
        yield server


@pytest.fixture
def announced():
    """Lifecycle announcements of receipts, as (event name, platform id, payload)."""
    seen = []

    def listen(sender, platform_id, payload, **kwargs):
        seen.append((sender, platform_id, payload))

    signals = (lifecycle.delivery_delivered, lifecycle.delivery_bounced, lifecycle.delivery_opened)
    for signal in signals:
        signal.connect(listen)
    yield seen
    for signal in signals:
        signal.disconnect(listen)


def auth(secret: str = SECRET) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


def post(client, url, payload, **extra):
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    return client.post(url, data=body, content_type="application/json", **extra)


def send(platform, source, *addresses, notification_type="system_alert"):
    return notification_send(
        platform=platform,
        source=source,
        channels=["email"],
        recipients=[Recipient(address=a) for a in addresses],
        message=Message(title="Course update", body="Week 3 is open.", notification_type=notification_type),
    )


def row(source, address) -> Notification:
    return Notification.objects.get(source=source, address=address)


# Anymail's test payloads (tests/test_postmark_webhooks.py), aimed at our rows' message ids.
def postmark_bounce(message_id, email, *, kind="HardBounce"):
    return {
        "RecordType": "Bounce",
        "ID": 901542550,
        "Type": kind,
        "TypeCode": 1,
        "ServerID": 23,
        "Name": "Hard bounce",
        "MessageID": message_id,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email,
        "From": "sender@example.com",
        "BouncedAt": "2016-04-27T16:28:50.3963933-04:00",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Postmark event test",
        "Content": "...",
    }


def postmark_delivery(message_id, email):
    return {
        "RecordType": "Delivery",
        "ServerId": 23,
        "MessageID": message_id,
        "Recipient": email,
        "Tag": "welcome-email",
        "Metadata": {"cohort": "2014-08-A", "userid": "12345"},
        "DeliveredAt": "2014-08-01T13:28:10.2735393-04:00",
        "Details": "Test delivery webhook details",
    }


def postmark_open(message_id, email):
    return {
        "RecordType": "Open",
        "FirstOpen": True,
        "Client": {"Name": "Gmail", "Company": "Google", "Family": "Gmail"},
        "OS": {"Name": "unknown", "Company": "unknown", "Family": "unknown"},
        "Platform": "Unknown",
        "UserAgent": "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0",
        "ReadSeconds": 0,
        "Geo": {},
        "MessageID": message_id,
        "ReceivedAt": "2016-04-27T16:21:41.2493688-04:00",
        "Recipient": email,
    }


def postmark_spam(message_id, email):
    return {
        "RecordType": "SpamComplaint",
        "ID": 901542550,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Tag": "Test",
        "MessageID": message_id,
        "ServerID": 1234,
        "Description": "",
        "Details": "Test spam complaint details",
        "Email": email,
        "From": "sender@example.com",
        "BouncedAt": "2016-04-27T16:28:50.3963933-04:00",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": "Postmark event test",
    }


# Anymail's Mailgun payloads (tests/test_mailgun_webhooks.py), signed as Mailgun signs them.
def mailgun_signed(event_data: dict, key: str = SIGNING_KEY) -> dict:
    token, timestamp = "651869375b9df3c98fc15c4889b102119add1235c38fc92824", "1534108637"
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event_data}


def mailgun_delivered(message_id, email):
    return mailgun_signed(
        {
            "tags": [],
            "timestamp": 1534108637.153125,
            "id": "hTWCTD81RtiDN-...",
            "log-level": "info",
            "message": {
                "headers": {"to": email, "message-id": message_id, "from": "test@example.org", "subject": "Testing"}
            },
            "recipient": email,
            "event": "delivered",
            "delivery-status": {"code": 250, "message": "OK", "description": ""},
        }
    )


def mailgun_failed_permanent(message_id, email):
    return mailgun_signed(
        {
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "recipient": email,
            "timestamp": 1534110422.389832,
            "log-level": "error",
            "message": {"headers": {"to": email, "message-id": message_id, "from": "Test Sender "}},
            "delivery-status": {
                "code": 550,
                "message": "5.1.1 The email account that you tried to reach does not exist.",
                "description": "",
            },
        }
    )


# -- sending through anymail ----------------------------------------------------------


def test_send_through_anymail_records_the_provider_and_its_message_id(postmark, platform):
    result = send(platform, "esp:1", "ada@example.org", "bo@example.org")

    assert (result.sent, result.failed) == (2, 0)
    accepted = {body["To"]: (message_id, body) for message_id, body in postmark.accepted}
    for address in ("ada@example.org", "bo@example.org"):
        delivery = row("esp:1", address)
        message_id, body = accepted[address]
        assert (delivery.provider, delivery.provider_message_id) == ("Postmark", message_id)
        assert body["Subject"] == "Course update" and body["TextBody"] == "Week 3 is open."
        headers = {h["Name"]: h["Value"] for h in body.get("Headers", [])}
        assert headers["X-Notification-ID"] == str(delivery.pk)
    # Idempotent: the same send again posts nothing.
    send(platform, "esp:1", "ada@example.org", "bo@example.org")
    assert len(postmark.accepted) == 2


def test_provider_trouble_is_retried_and_a_refused_recipient_is_final(postmark, platform):
    postmark.inactive.add("gone@example.org")
    postmark.reply_next(503, {"ErrorCode": 100, "Message": "Maintenance"}, {"Retry-After": "120"})

    result = send(platform, "esp:2", "busy@example.org", "gone@example.org")

    busy, gone = row("esp:2", "busy@example.org"), row("esp:2", "gone@example.org")
    assert busy.delivery_status == DeliveryStatus.PENDING and busy.next_attempt_at is not None
    assert "503" in busy.error
    assert gone.delivery_status == DeliveryStatus.FAILED and "refused by Postmark" in gone.error
    assert result.failed == 1


def test_unreachable_provider_is_retryable(settings, postmark, platform):
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_API_URL": "http://127.0.0.1:9/"}
    delivery = Notification.objects.create(
        platform=platform, recipient_key="email:x@example.org", address="x@example.org", channel="email", source="s"
    )
    [(_, result)] = list(EmailBackend().send([delivery]))
    assert not result.ok and result.retryable and "Cannot reach Postmark" in result.error


# -- receipts ---------------------------------------------------------------------------


def test_postmark_receipts_update_the_named_row_and_announce(
    client, postmark, platform, announced, django_capture_on_commit_callbacks
):
    send(platform, "esp:3", "ada@example.org", "bo@example.org")
    ada, bo = row("esp:3", "ada@example.org"), row("esp:3", "bo@example.org")

    with django_capture_on_commit_callbacks(execute=True):
        delivered = post(client, POSTMARK_URL, postmark_delivery(ada.provider_message_id, ada.address), **auth())
        opened = post(client, POSTMARK_URL, postmark_open(ada.provider_message_id, ada.address), **auth())

    assert delivered.status_code == 200 and delivered.json()["matched"] == 1
    assert opened.status_code == 200
    receipt = DeliveryReceipt.objects.get(pk=ada.pk)
    assert receipt.provider == "Postmark"
    assert receipt.delivered_at is not None and receipt.opened_at is not None
    # The open happened after the delivery (by the provider's clock): it is the status.
    assert receipt.provider_status == "opened"
    assert not DeliveryReceipt.objects.filter(pk=bo.pk).exists()
    assert [(name, pid) for name, pid, _ in announced] == [
        ("delivery.delivered", platform.pk),
        ("delivery.opened", platform.pk),
    ]
    assert announced[0][2]["notification_id"] == str(ada.pk)
    assert announced[0][2]["provider_message_id"] == ada.provider_message_id


def test_a_hard_bounce_suppresses_the_address_and_the_next_send_skips_it(
    client, postmark, platform, announced, django_capture_on_commit_callbacks
):
    send(platform, "esp:4", "gone@example.org", "ok@example.org")
    gone = row("esp:4", "gone@example.org")
    payload = postmark_bounce(gone.provider_message_id, "gone@example.org")

    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, POSTMARK_URL, payload, **auth())
        again = post(client, POSTMARK_URL, payload, **auth())  # providers re-post until answered

    assert first.status_code == again.status_code == 200
    receipt = DeliveryReceipt.objects.get(pk=gone.pk)
    assert receipt.provider_status == "bounced" and receipt.bounced_at is not None
    assert "550 5.1.1" in receipt.detail
    entry = Suppression.objects.get(platform=platform, address="gone@example.org")
    assert (entry.channel, entry.reason, entry.source, entry.notification_id) == (
        "email",
        "hard_bounce",
        "Postmark",
        gone.pk,
    )
    assert [name for name, _, _ in announced] == ["delivery.bounced"]  # once, not per re-post

    accepted_before = len(postmark.accepted)
    result = send(platform, "esp:5", "GONE@example.org", "ok@example.org")

    skipped = Notification.objects.get(source="esp:5", address__iexact="gone@example.org")
    assert (skipped.delivery_status, skipped.rule) == ("suppressed", "suppression_list")
    assert [body["To"] for _, body in postmark.accepted[accepted_before:]] == ["ok@example.org"]
    assert result.sent == 1 and result.suppressed == 1


def test_soft_bounce_defers_without_suppressing(client, postmark, platform):
    send(platform, "esp:6", "full@example.org")
    full = row("esp:6", "full@example.org")
    response = post(
        client, POSTMARK_URL, postmark_bounce(full.provider_message_id, full.address, kind="SoftBounce"), **auth()
    )
    assert response.status_code == 200
    assert DeliveryReceipt.objects.get(pk=full.pk).provider_status == "deferred"
    assert not Suppression.objects.exists()


def test_spam_complaint_suppresses(client, postmark, platform):
    send(platform, "esp:7", "angry@example.org")
    angry = row("esp:7", "angry@example.org")
    assert (
        post(client, POSTMARK_URL, postmark_spam(angry.provider_message_id, angry.address), **auth()).status_code == 200
    )
    assert DeliveryReceipt.objects.get(pk=angry.pk).complained_at is not None
    assert Suppression.objects.get(address="angry@example.org").reason == "complaint"


def test_mailgun_receipts_are_checked_by_signature(client, postmark, platform, announced):
    """A second provider: Mailgun's signed payloads update rows Mailgun sent."""
    delivered = Notification.objects.create(
        platform=platform,
        recipient_key="email:recipient@example.com",
        address="recipient@example.com",
        channel="email",
        source="mg:1",
        delivery_status="sent",
        provider="Mailgun",
        provider_message_id="<20180812211713.1.DF5966851B4BAA99@example.org>",
    )
    bounced = Notification.objects.create(
        platform=platform,
        recipient_key="email:invalid@example.com",
        address="invalid@example.com",
        channel="email",
        source="mg:1",
        delivery_status="sent",
        provider="Mailgun",
        provider_message_id="<20180812214658.1.0DF563D0B3597700@example.org>",
    )

    ok = post(
        client,
        MAILGUN_URL,
        mailgun_delivered("20180812211713.1.DF5966851B4BAA99@example.org", delivered.address),
        **auth(),
    )
    bounce = post(
        client,
        MAILGUN_URL,
        mailgun_failed_permanent("20180812214658.1.0DF563D0B3597700@example.org", bounced.address),
        **auth(),
    )
    forged = post(
        client,
        MAILGUN_URL,
        mailgun_signed({"event": "delivered", "recipient": "x@example.com"}, key="not-the-key"),
        **auth(),
    )

    assert ok.status_code == 200 and ok.json()["matched"] == 1
    assert DeliveryReceipt.objects.get(pk=delivered.pk).provider_status == "delivered"
    assert bounce.status_code == 200
    assert DeliveryReceipt.objects.get(pk=bounced.pk).provider_status == "bounced"
    assert Suppression.objects.get(address="invalid@example.com").source == "Mailgun"
    assert forged.status_code == 401


def test_a_receipt_touches_only_the_row_it_names(client, postmark, platform):
    other = PlatformFactory(key="other-school")
    send(platform, "esp:8", "ada@example.org")
    send(other, "esp:9", "ada@example.org")
    mine, theirs = row("esp:8", "ada@example.org"), row("esp:9", "ada@example.org")

    post(client, POSTMARK_URL, postmark_bounce(mine.provider_message_id, "ada@example.org"), **auth())
    # The id of one row with another address: not that row's receipt.
    mismatch = post(client, POSTMARK_URL, postmark_bounce(theirs.provider_message_id, "eve@example.org"), **auth())
    unknown = post(client, POSTMARK_URL, postmark_delivery("00000000-0000-0000-0000-000000000000", "x@y.org"), **auth())

    assert list(DeliveryReceipt.objects.values_list("pk", flat=True)) == [mine.pk]
    assert list(Suppression.objects.values_list("platform__key", flat=True)) == [platform.key]
    assert mismatch.json()["ignored"] == 1 and unknown.json()["ignored"] == 1
    # A Mailgun receipt never touches a row Postmark sent, whatever id it names.
    post(client, MAILGUN_URL, mailgun_delivered(theirs.provider_message_id, theirs.address), **auth())
    assert not DeliveryReceipt.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize(
    ("url", "body", "extra", "status"),
    [
        (POSTMARK_URL, "{not json", "auth", 400),
        (POSTMARK_URL, "[1, 2, 3]", "auth", 400),
        (POSTMARK_URL, "42", "auth", 400),
        # Well-formed but naming no delivery: acknowledged, so the provider stops re-posting it.
        (POSTMARK_URL, '{"RecordType": "Bounce"}', "auth", 200),
        (POSTMARK_URL, "\x00\xff", "auth", 400),
        (POSTMARK_URL, '{"RecordType": "Delivery"}', "none", 401),
        (POSTMARK_URL, '{"RecordType": "Delivery"}', "wrong", 401),
        (MAILGUN_URL, "{not json", "auth", 401),
        (MAILGUN_URL, '{"signature": "x", "event-data": 1}', "auth", 401),
        ("/webhooks/email/nosuch/tracking/", "{}", "auth", 404),
    ],
)
def test_junk_is_refused_and_writes_nothing(client, postmark, platform, url, body, extra, status):
    send(platform, "esp:10", "ada@example.org")
    headers = {"auth": auth(), "wrong": auth("receipts:guess"), "none": {}}[extra]
    response = client.post(url, data=body, content_type="application/json", **headers)
    assert response.status_code == status
    assert not DeliveryReceipt.objects.exists() and not Suppression.objects.exists()


def test_receipts_are_off_without_a_webhook_secret(client, settings, postmark, platform):
    send(platform, "esp:11", "ada@example.org")
    ada = row("esp:11", "ada@example.org")
    settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if k != "WEBHOOK_SECRET"}
    response = post(client, POSTMARK_URL, postmark_delivery(ada.provider_message_id, ada.address))
    assert response.status_code == 403
    assert not DeliveryReceipt.objects.exists()


def test_missing_provider_settings_ask_the_provider_to_retry(client, settings, postmark):
    settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if k != "MAILGUN_WEBHOOK_SIGNING_KEY"}
    response = post(client, MAILGUN_URL, mailgun_delivered("x@example.org", "a@example.org"), **auth())
    assert response.status_code == 503

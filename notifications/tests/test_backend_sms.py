"""SMS over HTTP to a local server that answers like AfroMessage."""

from __future__ import annotations

import socket

import pytest

from notifications.backends.sms import AfroMessageBackend
from notifications.models import DeliveryStatus, Notification
from notifications.pipeline import Message, Recipient, notification_send
from notifications.pipeline.write import deliveries_write
from notifications.tests.fakes import backend_settings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_only")]

SMS_BACKEND = "notifications.backends.sms.AfroMessageBackend"


@pytest.fixture
def afromessage(settings, afromessage_server):
    settings.AFROMESSAGE = afromessage_server.settings
    settings.NOTIFICATION_BACKENDS = backend_settings(settings.NOTIFICATION_BACKENDS, sms=SMS_BACKEND)
    return afromessage_server


def send(platform, source, recipients, text="Your exam starts at 9:00."):
    return notification_send(
        platform=platform,
        source=source,
        channels=["sms"],
        recipients=recipients,
        message=Message(title="Exam", body=text),
    )


def rows(source):
    return {n.recipient_key: n for n in Notification.objects.filter(source=source)}


def test_single_send_posts_afromessage_fields(afromessage, platform, make_user):
    jane = make_user("jane", phone_number="0911234567")
    result = send(platform, "bulk:one", [Recipient(user_id=jane.id)])

    assert (result.sent, result.failed) == (1, 0)
    [call] = afromessage.requests
    assert (call.method, call.path) == ("POST", "/api/send")
    assert call.headers["authorization"] == f"Bearer {afromessage.token}"
    assert call.json == {
        "to": "+251911234567",
        "message": "Your exam starts at 9:00.",
        "from": afromessage.sender_id,
        "sender": afromessage.sender_name,
    }
    row = rows("bulk:one")[f"user:{jane.id}"]
    assert row.delivery_status == DeliveryStatus.SENT
    assert row.address == "+251911234567"
    assert row.provider_message_id  # AfroMessage's message_id


def test_get_method_sends_query_parameters(afromessage, platform, settings):
    settings.NOTIFICATION_BACKENDS["sms"]["OPTIONS"] = {"METHOD": "GET"}
    result = send(platform, "bulk:get", [Recipient(address="+251911000001")])
    assert result.sent == 1
    [call] = afromessage.requests
    assert (call.method, call.path) == ("GET", "/api/send")
    assert call.query["to"] == "+251911000001"
    assert call.query["message"] == "Your exam starts at 9:00."
    assert call.query["from"] == afromessage.sender_id
    assert call.query["sender"] == afromessage.sender_name


def test_same_text_to_many_uses_one_bulk_call(afromessage, platform):
    phones = ["+251911000001", "+251911000002", "0911000003"]
    result = send(platform, "bulk:many", [Recipient(address=p) for p in phones])

    assert (result.sent, result.failed) == (3, 0)
    [call] = afromessage.requests
    assert (call.method, call.path) == ("POST", "/api/bulk_send")
    assert sorted(call.json["to"]) == ["+251911000001", "+251911000002", "+251911000003"]
    assert call.json["message"] == "Your exam starts at 9:00."
    assert call.json["from"] == afromessage.sender_id
    assert call.json["sender"] == afromessage.sender_name
    assert call.json["campaign"] == "bulk:many"
    campaign_ids = {row.provider_message_id for row in rows("bulk:many").values()}
    assert len(campaign_ids) == 1 and campaign_ids != {""}


def test_personalised_texts_go_one_by_one(afromessage, platform):
    def render(recipient, channel, user):
        return Message(body=f"Hello {recipient.address[-2:]}")

    notification_send(
        platform=platform,
        source="bulk:personal",
        channels=["sms"],
        recipients=[Recipient(address="+251911000001"), Recipient(address="+251911000002")],
        render=render,
    )
    assert {(c.path, c.json["to"], c.json["message"]) for c in afromessage.requests} == {
        ("/api/send", "+251911000001", "Hello 01"),
        ("/api/send", "+251911000002", "Hello 02"),
    }


def test_acknowledge_error_with_http_200_is_a_failed_delivery(afromessage, platform):
    afromessage.reject["+251911000009"] = "+251911000009 is unverified contact number."
    result = send(platform, "bulk:rejected", [Recipient(address="+251911000009")])

    assert (result.sent, result.failed) == (0, 1)
    row = rows("bulk:rejected")["phone:+251911000009"]
    assert row.error == "AfroMessage refused: +251911000009 is unverified contact number."
    assert row.attempts == 1
    assert len(afromessage.requests) == 1  # a refusal is final: not retried


def test_invalid_number_fails_without_calling_afromessage(afromessage, platform):
    result = send(platform, "bulk:invalid", [Recipient(address="12345"), Recipient(address="+251911000001")])

    assert (result.sent, result.failed) == (1, 1)
    assert rows("bulk:invalid")["phone:12345"].error == "Invalid phone number: '12345'"
    assert [c.json["to"] for c in afromessage.requests] == ["+251911000001"]


def test_other_http_4xx_is_not_retried(afromessage, platform):
    afromessage.reply_next(400, {"acknowledge": "error", "response": {"errors": ["Bad request"]}})
    result = send(platform, "bulk:400", [Recipient(address="+251911000001")])
    assert result.failed == 1
    row = rows("bulk:400")["phone:+251911000001"]
    assert row.attempts == 1 and row.error.startswith("AfroMessage HTTP 400")
    assert len(afromessage.requests) == 1


def test_wrong_token_is_a_failure(afromessage, platform, settings):
    settings.AFROMESSAGE = {**afromessage.settings, "TOKEN": "expired"}
    result = send(platform, "bulk:token", [Recipient(address="+251911000001")])
    assert result.failed == 1
    assert rows("bulk:token")["phone:+251911000001"].error.startswith("AfroMessage HTTP 401")


# -- the backend on its own: what is worth retrying -----------------------------------


def deliveries(platform, source, phones, text="Reminder"):
    deliveries_write(
        platform=platform,
        source=source,
        channels=["sms"],
        recipients=[Recipient(address=p) for p in phones],
        message=Message(body=text),
    )
    return list(Notification.objects.filter(source=source).order_by("address"))


def test_429_is_retryable_after_the_providers_wait(afromessage, platform):
    afromessage.reply_next(429, {"message": "Too many requests"}, {"Retry-After": "30"})
    [(_, result)] = list(AfroMessageBackend().send(deliveries(platform, "direct:429", ["+251911000001"])))
    assert not result.ok and result.retryable
    assert result.retry_after == 30
    assert "429" in result.error


def test_500_is_retryable(afromessage, platform):
    afromessage.reply_next(500, b"<html>Internal Server Error</html>")
    [(_, result)] = list(AfroMessageBackend().send(deliveries(platform, "direct:500", ["+251911000001"])))
    assert not result.ok and result.retryable and result.retry_after is None
    assert result.error.startswith("AfroMessage HTTP 500")


def test_bulk_failure_applies_to_every_recipient_of_the_call(afromessage, platform):
    afromessage.reply_next(503, {}, {"Retry-After": "5"})
    rows_ = deliveries(platform, "direct:bulk503", ["+251911000001", "+251911000002"])
    results = [r for _, r in AfroMessageBackend().send(rows_)]
    assert [(r.ok, r.retryable, r.retry_after) for r in results] == [(False, True, 5), (False, True, 5)]
    assert len(afromessage.requests) == 1


def test_timeout_is_retryable(afromessage, platform):
    afromessage.reply_next(200, {"acknowledge": "success", "response": {}}, delay=1.0)
    backend = AfroMessageBackend(**{**afromessage.settings, "TIMEOUT": 0.2})
    [(_, result)] = list(backend.send(deliveries(platform, "direct:slow", ["+251911000001"])))
    assert not result.ok and result.retryable and "timed out" in result.error


def test_unreachable_provider_is_retryable(settings, platform):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = AfroMessageBackend(BASE_URL=f"http://127.0.0.1:{port}/api", TOKEN="t", TIMEOUT=2)
    [(_, result)] = list(backend.send(deliveries(platform, "direct:down", ["+251911000001"])))
    assert not result.ok and result.retryable and "unreachable" in result.error


def test_answer_that_is_not_json_is_not_retried(afromessage, platform):
    afromessage.reply_next(200, b"<html>maintenance</html>")
    [(_, result)] = list(AfroMessageBackend().send(deliveries(platform, "direct:html", ["+251911000001"])))
    assert not result.ok and not result.retryable
    assert "not JSON" in result.error


def test_options_override_settings(afromessage, platform, settings):
    settings.AFROMESSAGE = {"BASE_URL": "http://127.0.0.1:1/api", "TOKEN": "unused"}
    backend = AfroMessageBackend(**afromessage.settings, BULK=False)
    rows_ = deliveries(platform, "direct:opts", ["+251911000001", "+251911000002"])
    assert all(r.ok for _, r in backend.send(rows_))
    assert [c.path for c in afromessage.requests] == ["/api/send", "/api/send"]


def test_a_batch_is_decided_at_once_only_when_one_call_does(afromessage, platform):
    """A list of results is recorded in one go; with more calls, each result comes before the next call."""
    backend = AfroMessageBackend()
    backend.open()
    try:
        same_text = deliveries(platform, "bulk:same", ["+251911000001", "+251911000002", "+251911000003"], "Hi")
        assert isinstance(backend.send_batch(same_text), list)  # one bulk_send
        single = deliveries(platform, "bulk:single", ["+251911000004"], "Hi")
        assert isinstance(backend.send_batch(single), list)  # one send
        two_texts = deliveries(platform, "bulk:two", ["+251911000005"], "Hi") + deliveries(
            platform, "bulk:three", ["+251911000006"], "Bye"
        )
        lazy = backend.send_batch(two_texts)
        assert not isinstance(lazy, list)
        assert [r.ok for r in lazy] == [True, True]
    finally:
        backend.close()
    assert [r.path for r in afromessage.requests] == ["/api/bulk_send", "/api/send", "/api/send", "/api/send"]

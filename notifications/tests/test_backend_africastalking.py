"""SMS over HTTP to a local server that answers like Africa's Talking."""

from __future__ import annotations

import socket
from urllib.parse import urlencode

import pytest

from notifications.backends.africastalking import AfricasTalkingBackend
from notifications.models import DeliveryStatus, Notification, PlatformProviderCredentials
from notifications.pipeline import Message, Recipient, notification_send
from notifications.pipeline.write import deliveries_write
from notifications.tests.fakes import backend_settings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_only")]

AT_BACKEND = "notifications.backends.africastalking.AfricasTalkingBackend"


@pytest.fixture
def africastalking(settings, africastalking_server):
    settings.AFRICASTALKING = africastalking_server.settings
    settings.NOTIFICATION_BACKENDS = backend_settings(settings.NOTIFICATION_BACKENDS, sms=AT_BACKEND)
    return africastalking_server


def send(platform, source, recipients, text="Your exam starts at 9:00."):
    message = Message(title="Exam", body=text)
    return notification_send(platform=platform, source=source, channels=["sms"], recipients=recipients, message=message)


def rows(source):
    return {n.recipient_key: n for n in Notification.objects.filter(source=source)}


def deliveries(platform, source, phones, text="Reminder"):
    deliveries_write(
        platform=platform,
        source=source,
        channels=["sms"],
        recipients=[Recipient(address=p) for p in phones],
        message=Message(body=text),
    )
    return list(Notification.objects.filter(source=source).order_by("address"))


def one_result(platform, source, phone="+251911000001", **options):
    [(_, result)] = list(AfricasTalkingBackend(**options).send(deliveries(platform, source, [phone])))
    return result


def test_send_posts_the_form_africas_talking_expects(africastalking, platform, make_user):
    jane = make_user("jane", phone_number="0911234567")
    result = send(platform, "bulk:at-one", [Recipient(user_id=jane.id)])

    assert (result.sent, result.failed) == (1, 0)
    [call] = africastalking.requests
    assert (call.method, call.path) == ("POST", "/version1/messaging")
    assert call.headers["apikey"] == africastalking.api_key
    assert call.headers["accept"] == "application/json"
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert call.form == {
        "username": africastalking.username,
        "to": "+251911234567",
        "message": "Your exam starts at 9:00.",
        "from": africastalking.sender_id,
    }
    row = rows("bulk:at-one")[f"user:{jane.id}"]
    assert row.delivery_status == DeliveryStatus.SENT
    assert row.provider_message_id.startswith("ATXid_")
    assert row.provider == "africastalking"
    assert row.rule == ""  # the only provider: nothing failed over


def test_same_text_to_many_is_one_call_with_comma_separated_numbers(africastalking, platform):
    phones = ["+251911000001", "+251911000002", "0911000003"]
    result = send(platform, "bulk:at-many", [Recipient(address=p) for p in phones])

    assert (result.sent, result.failed) == (3, 0)
    [call] = africastalking.requests
    assert sorted(call.form["to"].split(",")) == ["+251911000001", "+251911000002", "+251911000003"]
    ids = {row.provider_message_id for row in rows("bulk:at-many").values()}
    assert len(ids) == 3  # one messageId per recipient, not per call


def test_per_number_status_codes(africastalking, platform):
    africastalking.statuses["+251911000002"] = (403, "InvalidPhoneNumber")
    africastalking.statuses["+251911000003"] = (406, "UserInBlacklist")
    result = send(platform, "bulk:at-codes", [Recipient(address=f"+25191100000{i}") for i in (1, 2, 3)])

    assert (result.sent, result.failed) == (1, 2)
    found = rows("bulk:at-codes")
    assert found["phone:+251911000002"].error == "Africa's Talking refused: 403 InvalidPhoneNumber"
    assert found["phone:+251911000003"].error == "Africa's Talking refused: 406 UserInBlacklist"
    assert found["phone:+251911000003"].attempts == 1
    assert len(africastalking.requests) == 1  # final refusals: not retried


def test_a_numbers_internal_error_is_a_clear_refusal_for_now(africastalking, platform):
    africastalking.statuses["+251911000001"] = (500, "InternalServerError")
    result = one_result(platform, "direct:at-500")
    assert not result.ok and result.retryable and result.definite
    assert result.error == "Africa's Talking refused for now: 500 InternalServerError"


def test_wrong_api_key_is_a_final_failure(africastalking, platform):
    result = one_result(platform, "direct:at-key", **{**africastalking.settings, "API_KEY": "revoked"})
    assert not result.ok and not result.retryable
    assert result.error == "Africa's Talking HTTP 401: The supplied authentication is invalid"


def test_503_is_retryable_and_a_clear_refusal(africastalking, platform):
    africastalking.reply_next(503, b"Service Unavailable", {"Retry-After": "20"})
    result = one_result(platform, "direct:at-503")
    assert not result.ok and result.retryable and result.definite and result.retry_after == 20


def test_500_is_retryable_but_may_have_sent(africastalking, platform):
    africastalking.reply_next(500, b"<html>oops</html>")
    result = one_result(platform, "direct:at-500h")
    assert not result.ok and result.retryable and not result.definite


def test_timeout_is_retryable_but_may_have_sent(africastalking, platform):
    africastalking.reply_next(201, {"SMSMessageData": {"Recipients": []}}, delay=1.0)
    result = one_result(platform, "direct:at-slow", **{**africastalking.settings, "TIMEOUT": 0.2})
    assert not result.ok and result.retryable and not result.definite
    assert "timed out" in result.error


def test_connection_refused_is_a_clear_refusal(platform, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = one_result(
        platform, "direct:at-down", BASE_URL=f"http://127.0.0.1:{port}/version1", USERNAME="u", API_KEY="k", TIMEOUT=2
    )
    assert not result.ok and result.retryable and result.definite
    assert "unreachable" in result.error


def test_an_answer_without_the_recipients_is_not_retried(africastalking, platform):
    africastalking.reply_next(201, b"<html>maintenance</html>")
    result = one_result(platform, "direct:at-html")
    assert not result.ok and not result.retryable and not result.definite
    assert "unexpected" in result.error


def test_a_number_missing_from_the_answer_is_not_retried(africastalking, platform):
    africastalking.reply_next(201, {"SMSMessageData": {"Message": "Sent to 0/1", "Recipients": []}})
    result = one_result(platform, "direct:at-missing")
    assert not result.ok and not result.retryable
    assert "did not report this number" in result.error


def test_a_platform_sends_on_its_own_account(africastalking, platform, make_user):
    own = PlatformProviderCredentials(
        platform=platform, provider="africastalking", username="acme-own", sender_id="ACME"
    )
    own.secret = "acme-own-key"
    own.save()
    africastalking.reply_next(
        201,
        {
            "SMSMessageData": {
                "Message": "Sent to 1/1",
                "Recipients": [
                    {"statusCode": 101, "number": "+251911000001", "status": "Success", "messageId": "ATXid_own"}
                ],
            }
        },
    )
    result = send(platform, "bulk:at-own", [Recipient(address="+251911000001")])

    assert result.sent == 1
    [call] = africastalking.requests
    assert call.headers["apikey"] == "acme-own-key"
    assert (call.form["username"], call.form["from"]) == ("acme-own", "ACME")
    assert own.secret_encrypted and "acme-own-key" not in own.secret_encrypted


def test_undecryptable_platform_credentials_fail_instead_of_using_another_account(africastalking, platform):
    PlatformProviderCredentials.objects.create(
        platform=platform, provider="africastalking", username="acme-own", secret_encrypted="not-a-fernet-token"
    )
    result = send(platform, "bulk:at-broken", [Recipient(address="+251911000001")])
    assert result.failed == 1
    assert "cannot be decrypted" in rows("bulk:at-broken")["phone:+251911000001"].error
    assert africastalking.requests == []


# -- delivery reports ----------------------------------------------------------------------------

REPORTS = "/api/v1/providers/africastalking/delivery-reports"


@pytest.fixture
def sent_row(africastalking, platform):
    send(platform, "bulk:at-report", [Recipient(address="+251911000001")])
    return Notification.objects.get(source="bulk:at-report")


def report(client, url=REPORTS, **fields):
    # Url-encoded, as Africa's Talking posts.
    return client.post(url, urlencode(fields), content_type="application/x-www-form-urlencoded")


def test_a_failed_report_marks_the_sent_row_failed_once(client, sent_row, django_capture_on_commit_callbacks):
    from notifications import lifecycle

    seen = []
    lifecycle.delivery_failed.connect(lambda **kw: seen.append(kw["payload"]), weak=False, dispatch_uid="t")
    try:
        fields = {"id": sent_row.provider_message_id, "status": "Failed", "phoneNumber": "+251911000001"}
        with django_capture_on_commit_callbacks(execute=True):
            r = report(client, **fields, failureReason="UserInBlackList", networkCode="63902")
        assert r.status_code == 200 and r.json()["data"] == {"matched": 1, "updated": 1}
        sent_row.refresh_from_db()
        assert sent_row.delivery_status == DeliveryStatus.FAILED
        assert sent_row.error == "Africa's Talking delivery report: Failed: UserInBlackList (network 63902)"

        again = report(client, **fields, failureReason="UserInBlackList")
        assert again.status_code == 200 and again.json()["data"] == {"matched": 1, "updated": 0}
    finally:
        lifecycle.delivery_failed.disconnect(dispatch_uid="t")
    assert [(p["notification_id"], p["delivery_status"]) for p in seen] == [(str(sent_row.pk), "failed")]


def test_interim_and_success_reports_leave_the_row_sent(client, sent_row):
    for status in ("Sent", "Submitted", "Buffered", "Success"):
        r = report(client, id=sent_row.provider_message_id, status=status)
        assert r.status_code == 200 and r.json()["data"] == {"matched": 1, "updated": 0}
    sent_row.refresh_from_db()
    assert sent_row.delivery_status == DeliveryStatus.SENT


def test_a_report_touches_only_the_row_of_its_provider_and_id(client, sent_row, platform):
    other = Notification.objects.create(
        platform=platform,
        recipient_key="phone:+251911000002",
        address="+251911000002",
        channel="sms",
        source="bulk:afro",
        delivery_status=DeliveryStatus.SENT,
        provider="afromessage",
        provider_message_id="shared-id",
    )
    assert report(client, id="shared-id", status="Failed").json()["data"] == {"matched": 0, "updated": 0}
    assert report(client, id="ATXid_unknown", status="Rejected").json()["data"] == {"matched": 0, "updated": 0}
    other.refresh_from_db()
    sent_row.refresh_from_db()
    assert other.delivery_status == sent_row.delivery_status == DeliveryStatus.SENT


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": "ATXid_1"},
        {"id": "ATXid_1", "status": "Exploded"},
        {"id": "x" * 300, "status": "Failed"},
        {"status": "Failed"},
    ],
)
def test_junk_is_a_400_in_the_v1_format(client, body):
    r = report(client, **body)
    assert r.status_code == 400
    assert r.json()["message"] == "Invalid delivery report"


def test_junk_json_is_a_400_never_a_500(client):
    for raw in ('["id", "status"]', '{"id": {"$ne": 1}, "status": "Failed"}', "not json", '{"id": null}'):
        r = client.post(REPORTS, raw, content_type="application/json")
        assert r.status_code == 400, raw


def test_callback_token_when_configured(client, sent_row, settings):
    settings.AFRICASTALKING = {**settings.AFRICASTALKING, "CALLBACK_TOKEN": "s3cret"}
    fields = {"id": sent_row.provider_message_id, "status": "Failed"}
    assert report(client, **fields).status_code == 403
    assert report(client, f"{REPORTS}?token=wrong", **fields).status_code == 403
    r = report(client, f"{REPORTS}?token=s3cret", **fields)
    assert r.status_code == 200 and r.json()["data"] == {"matched": 1, "updated": 1}

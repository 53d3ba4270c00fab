"""SMS delivery reports as receipts, over real HTTP on loopback.

SMS go out through Africa's Talking on loopback (`fakes.AfricasTalkingServer`);
its delivery reports are posted, url-encoded and unsigned as Africa's Talking
posts them, to our callback on a live ASGI server (`live_url`).
"""

from __future__ import annotations

import pytest
import requests

from notifications import lifecycle
from notifications.models import DeliveryReceipt, DeliveryStatus, Notification, Suppression
from notifications.pipeline import Message, Recipient, notification_send
from notifications.tests.factories import PlatformFactory
from notifications.tests.fakes import AfricasTalkingServer, backend_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("loopback_only"),
]

REPORTS = "/api/v1/providers/africastalking/delivery-reports"
ADA, BO = "+251911000001", "+251911000002"


@pytest.fixture
def africastalking(settings, africastalking_server):
    settings.AFRICASTALKING = {**africastalking_server.settings, "CALLBACK_TOKEN": "dlr-5ecret"}
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, sms="notifications.backends.africastalking.AfricasTalkingBackend"
    )
    return africastalking_server


@pytest.fixture
def callback(live_url):
    """The delivery-report URL as registered in the Africa's Talking dashboard (with its token)."""
    return f"{live_url}{REPORTS}?token=dlr-5ecret"


@pytest.fixture
def announced():
    """Delivery events announced, as (event name, platform id, payload)."""
    seen = []

    def listen(sender, platform_id, payload, **kwargs):
        seen.append((sender, platform_id, payload))

    signals = (lifecycle.delivery_delivered, lifecycle.delivery_bounced, lifecycle.delivery_failed)
    for signal in signals:
        signal.connect(listen, dispatch_uid=f"sms-receipts:{signal.name}")
    yield seen
    for signal in signals:
        signal.disconnect(dispatch_uid=f"sms-receipts:{signal.name}")


def send(platform, source, *phones):
    return notification_send(
        platform=platform,
        source=source,
        channels=["sms"],
        recipients=[Recipient(address=p) for p in phones],
        message=Message(title="Exam", body="Your exam starts at 9:00."),
    )


def row(source, phone) -> Notification:
    return Notification.objects.get(source=source, address=phone)


def report(callback, sms: Notification, status, failure_reason="", phone=None):
    return AfricasTalkingServer.delivery_report(
        callback,
        message_id=sms.provider_message_id,
        status=status,
        phone=phone or sms.address,
        failure_reason=failure_reason,
    )


def test_success_is_a_delivered_receipt_announced_once(africastalking, callback, platform, announced):
    send(platform, "sms:ok", ADA)
    sms = row("sms:ok", ADA)

    first = report(callback, sms, "Success")
    again = report(callback, sms, "Success")  # Africa's Talking may post a report again

    assert first.status_code == again.status_code == 200
    assert first.json()["data"] == {"matched": 1, "updated": 0}
    receipt = DeliveryReceipt.objects.get(pk=sms.pk)
    assert (receipt.provider, receipt.provider_status, receipt.platform_id) == (
        "africastalking",
        "delivered",
        platform.pk,
    )
    assert receipt.delivered_at is not None and receipt.bounced_at is None
    sms.refresh_from_db()
    assert sms.delivery_status == DeliveryStatus.SENT
    assert [(name, pid) for name, pid, _ in announced] == [("delivery.delivered", platform.pk)]
    payload = announced[0][2]
    assert (payload["notification_id"], payload["channel"], payload["recipient"]) == (str(sms.pk), "sms", ADA)
    assert payload["provider_message_id"] == sms.provider_message_id


@pytest.mark.parametrize("phone", [ADA, ADA.lstrip("+"), "0911000001"])
def test_the_reported_number_matches_in_any_of_its_spellings(africastalking, callback, platform, phone):
    send(platform, "sms:spell", ADA)
    sms = row("sms:spell", ADA)
    assert report(callback, sms, "Success", phone=phone).json()["data"] == {"matched": 1, "updated": 0}


def test_interim_reports_record_the_status_without_announcing(africastalking, callback, platform, announced):
    send(platform, "sms:steps", ADA)
    sms = row("sms:steps", ADA)

    for status in ("Sent", "Submitted", "Buffered"):
        assert report(callback, sms, status).json()["data"] == {"matched": 1, "updated": 0}

    receipt = DeliveryReceipt.objects.get(pk=sms.pk)
    assert receipt.provider_status == "deferred" and receipt.deferred_at is not None  # Buffered: queued by the network
    assert announced == []


def test_an_invalid_number_fails_the_sms_and_suppresses_it_for_the_next_send(
    africastalking, callback, platform, announced
):
    send(platform, "sms:bad", ADA, BO)
    bad = row("sms:bad", BO)

    first = report(callback, bad, "Failed", "InvalidPhoneNumber")
    again = report(callback, bad, "Failed", "InvalidPhoneNumber")

    assert first.status_code == again.status_code == 200
    assert first.json()["data"] == {"matched": 1, "updated": 1}
    assert again.json()["data"] == {"matched": 1, "updated": 0}  # nothing changes the second time
    bad.refresh_from_db()
    assert bad.delivery_status == DeliveryStatus.FAILED
    assert bad.error == "Africa's Talking delivery report: Failed: InvalidPhoneNumber (network 63902)"
    receipt = DeliveryReceipt.objects.get(pk=bad.pk)
    assert receipt.provider_status == "bounced" and receipt.bounced_at is not None
    entry = Suppression.objects.get(platform=platform, channel="sms")
    assert (entry.address, entry.reason, entry.source, entry.notification_id) == (
        BO,
        "invalid_number",
        "africastalking",
        bad.pk,
    )
    assert sorted(name for name, _, _ in announced) == ["delivery.bounced", "delivery.failed"]
    failed = next(payload for name, _, payload in announced if name == "delivery.failed")
    assert (failed["notification_id"], failed["delivery_status"]) == (str(bad.pk), "failed")

    accepted_before = len(africastalking.accepted)
    result = send(platform, "sms:next", ADA, BO)

    skipped = row("sms:next", BO)
    assert (skipped.delivery_status, skipped.rule) == ("suppressed", "suppression_list")
    assert africastalking.accepted[accepted_before:] == [ADA]
    assert (result.sent, result.suppressed) == (1, 1)


def test_a_blacklisted_user_is_suppressed_only_on_the_platform_that_sent(africastalking, callback, platform):
    other = PlatformFactory(key="other-school")
    send(platform, "sms:bl", ADA)
    send(other, "sms:bl-other", ADA)
    ours = Notification.objects.get(source="sms:bl", platform=platform)

    assert report(callback, ours, "Rejected", "UserInBlacklist").json()["data"] == {"matched": 1, "updated": 1}

    assert list(Suppression.objects.values_list("platform_id", "address")) == [(platform.pk, ADA)]
    assert Notification.objects.get(source="sms:bl-other").delivery_status == DeliveryStatus.SENT
    result = send(other, "sms:bl-other-2", ADA)
    assert (result.sent, result.suppressed) == (1, 0)


@pytest.mark.parametrize(
    ("status", "reason"),
    [("Failed", "UserIsInactive"), ("Failed", "DeliveryFailure"), ("Rejected", ""), ("AbsentSubscriber", "")],
)
def test_a_failure_that_may_pass_fails_the_sms_without_suppressing(
    africastalking, callback, platform, announced, status, reason
):
    send(platform, "sms:soft", ADA)
    sms = row("sms:soft", ADA)

    assert report(callback, sms, status, reason).json()["data"] == {"matched": 1, "updated": 1}

    sms.refresh_from_db()
    assert sms.delivery_status == DeliveryStatus.FAILED
    assert DeliveryReceipt.objects.get(pk=sms.pk).provider_status == "failed"
    assert not Suppression.objects.exists()
    assert [name for name, _, _ in announced] == ["delivery.failed"]


def test_unknown_ids_and_other_numbers_are_answered_and_write_nothing(africastalking, callback, platform, announced):
    send(platform, "sms:unknown", ADA)
    sms = row("sms:unknown", ADA)

    unknown = AfricasTalkingServer.delivery_report(
        callback, message_id="ATXid_not-ours", status="Failed", phone=ADA, failure_reason="InvalidPhoneNumber"
    )
    # The id of one SMS with another number: not that SMS's report.
    mismatched = report(callback, sms, "Failed", "InvalidPhoneNumber", phone=BO)

    # Africa's Talking only needs a 2xx to stop re-posting; the body says nothing matched.
    assert unknown.status_code == mismatched.status_code == 200
    assert unknown.json()["data"] == mismatched.json()["data"] == {"matched": 0, "updated": 0}
    assert not DeliveryReceipt.objects.exists() and not Suppression.objects.exists()
    sms.refresh_from_db()
    assert sms.delivery_status == DeliveryStatus.SENT
    assert announced == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("", "application/x-www-form-urlencoded"),
        ("id=ATXid_1", "application/x-www-form-urlencoded"),
        ("id=ATXid_1&status=Exploded", "application/x-www-form-urlencoded"),
        ("id=" + "x" * 300 + "&status=Failed", "application/x-www-form-urlencoded"),
        ("%ff%fe=%00&status=Failed", "application/x-www-form-urlencoded"),
        ('{"id": {"$ne": 1}, "status": "Failed"}', "application/json"),
        ('["id", "status"]', "application/json"),
        ("not json", "application/json"),
        ("<xml/>", "text/xml"),
    ],
)
def test_junk_is_a_400_never_a_500(africastalking, callback, platform, body, content_type):
    r = requests.post(callback, data=body.encode(), headers={"Content-Type": content_type}, timeout=10)
    assert r.status_code in (400, 415), r.text
    assert not DeliveryReceipt.objects.exists()


def test_the_token_is_checked_over_http(africastalking, live_url, platform):
    send(platform, "sms:token", ADA)
    sms = row("sms:token", ADA)
    for url in (f"{live_url}{REPORTS}", f"{live_url}{REPORTS}?token=guess"):
        assert report(url, sms, "Failed", "InvalidPhoneNumber").status_code == 403
    assert not DeliveryReceipt.objects.exists() and not Suppression.objects.exists()


# -- AfroMessage: its `callback`, a URL of ours signed per delivery ------------------------------

AFRO_REPORTS = "/api/v1/providers/afromessage/status-reports"


@pytest.fixture
def afromessage(settings, afromessage_server, live_url):
    settings.AFROMESSAGE = {**afromessage_server.settings, "CALLBACK_BASE_URL": live_url}
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, sms="notifications.backends.sms.AfroMessageBackend"
    )
    return afromessage_server


def test_each_single_send_passes_its_own_signed_callback(afromessage, live_url, platform):
    send(platform, "afro:one", ADA)
    send(platform, "afro:two", BO)
    ada, bo = row("afro:one", ADA), row("afro:two", BO)

    assert set(afromessage.callbacks) == {ada.provider_message_id, bo.provider_message_id}
    url = afromessage.callbacks[ada.provider_message_id]
    assert url.startswith(f"{live_url}{AFRO_REPORTS}?d=") and str(ada.pk) in url
    assert afromessage.callbacks[bo.provider_message_id] != url


def test_a_delivered_report_is_a_receipt_announced_once(afromessage, platform, announced):
    send(platform, "afro:ok", ADA)
    sms = row("afro:ok", ADA)

    first = afromessage.status_report(sms.provider_message_id, status="Delivered", to=ADA)
    again = afromessage.status_report(sms.provider_message_id, status="DELIVRD", to=ADA, method="GET")

    assert first.status_code == again.status_code == 200
    assert first.json()["data"] == again.json()["data"] == {"matched": 1, "updated": 0}
    receipt = DeliveryReceipt.objects.get(pk=sms.pk)
    assert (receipt.provider, receipt.provider_status) == ("afromessage", "delivered")
    assert [(name, pid) for name, pid, _ in announced] == [("delivery.delivered", platform.pk)]


def test_a_failed_report_fails_the_sms_without_suppressing(afromessage, platform, announced):
    send(platform, "afro:fail", ADA)
    sms = row("afro:fail", ADA)

    first = afromessage.status_report(sms.provider_message_id, status="Failed", to=ADA)
    again = afromessage.status_report(sms.provider_message_id, status="Failed", to=ADA)

    assert first.json()["data"] == {"matched": 1, "updated": 1}
    assert again.json()["data"] == {"matched": 1, "updated": 0}
    sms.refresh_from_db()
    assert (sms.delivery_status, sms.error) == ("failed", "AfroMessage status report: Failed")
    assert DeliveryReceipt.objects.get(pk=sms.pk).provider_status == "failed"
    assert not Suppression.objects.exists()  # AfroMessage documents no reasons to tell a bad number by
    assert [name for name, _, _ in announced] == ["delivery.failed"]


def test_an_unknown_status_word_is_recorded_as_unknown(afromessage, platform, announced):
    send(platform, "afro:odd", ADA)
    sms = row("afro:odd", ADA)

    assert afromessage.status_report(sms.provider_message_id, status="Teleported", to=ADA).status_code == 200

    receipt = DeliveryReceipt.objects.get(pk=sms.pk)
    assert (receipt.provider_status, receipt.detail) == ("unknown", "AfroMessage: Teleported")
    sms.refresh_from_db()
    assert sms.delivery_status == DeliveryStatus.SENT and announced == []


def test_a_url_we_did_not_sign_is_refused_and_another_message_is_not_matched(afromessage, live_url, platform):
    send(platform, "afro:sig", ADA)
    send(platform, "afro:sig2", BO)
    ada, bo = row("afro:sig", ADA), row("afro:sig2", BO)
    signed = afromessage.callbacks[ada.provider_message_id]
    report = {"message_id": ada.provider_message_id, "status": "Failed"}

    for url in (
        f"{live_url}{AFRO_REPORTS}",
        f"{live_url}{AFRO_REPORTS}?d={ada.pk}",
        f"{live_url}{AFRO_REPORTS}?d={ada.pk}:forged",
        signed.replace(str(ada.pk), str(bo.pk)),
    ):
        assert requests.post(url, json=report, timeout=10).status_code == 403, url
    # Ada's URL with Bo's message id: not Ada's report, and never Bo's.
    other = requests.post(signed, json={"message_id": bo.provider_message_id, "status": "Failed"}, timeout=10)
    assert other.status_code == 200 and other.json()["data"] == {"matched": 0, "updated": 0}
    assert not DeliveryReceipt.objects.exists()
    assert set(
        Notification.objects.filter(source__startswith="afro:sig").values_list("delivery_status", flat=True)
    ) == {"sent"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("", "application/json"),
        ("{}", "application/json"),
        ('["status"]', "application/json"),
        ('{"status": {"$ne": 1}}', "application/json"),
        ('{"status": "' + "x" * 100 + '"}', "application/json"),
        ("not json", "application/json"),
        ("status=", "application/x-www-form-urlencoded"),
        ("<xml/>", "text/xml"),
    ],
)
def test_afromessage_junk_is_a_4xx_never_a_500(afromessage, platform, body, content_type):
    send(platform, "afro:junk", ADA)
    sms = row("afro:junk", ADA)
    url = afromessage.callbacks[sms.provider_message_id]
    r = requests.post(url, data=body.encode(), headers={"Content-Type": content_type}, timeout=10)
    assert r.status_code in (400, 415), r.text
    assert not DeliveryReceipt.objects.exists()


def test_bulk_sends_carry_no_callback(afromessage, platform):
    send(platform, "afro:bulk", ADA, BO)  # one text to two numbers: one bulk_send call
    assert [r.path for r in afromessage.requests] == ["/api/bulk_send"]
    assert "callback" not in afromessage.requests[0].params and afromessage.callbacks == {}

"""Addresses a provider refuses at send time go on the suppression list, over real wire fakes on loopback.

Africa's Talking (`fakes.AfricasTalkingServer`) answers a number 403
InvalidPhoneNumber or 406 UserInBlacklist; an aiosmtpd server refuses RCPT TO
with 550 5.1.1 (no such mailbox) or 550 5.7.1 (policy); Postmark, through
django-anymail's own backend (`fakes.PostmarkServer`), answers an address
invalid or inactive. Only the refusals that say the address itself is bad
list it, once, on the sending platform's list; the next send to it is
written `suppressed` and counted.
"""

from __future__ import annotations

import pytest

from notifications.backends.email import smtp_address_refused
from notifications.models import DeliveryRule, DeliveryStatus, Notification, Suppression
from notifications.pipeline import Message, Recipient, Send, notification_send, notification_send_many
from notifications.pipeline.dispatch import deliveries_dispatch
from notifications.tests.factories import PlatformFactory
from notifications.tests.fakes import PostmarkServer, backend_settings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_only")]

OK, INVALID, BLOCKED, RISK = "+251911000001", "+251911000002", "+251911000003", "+251911000004"


@pytest.fixture
def africastalking(settings, africastalking_server):
    settings.AFRICASTALKING = africastalking_server.settings
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, sms="notifications.backends.africastalking.AfricasTalkingBackend"
    )
    africastalking_server.statuses[INVALID] = (403, "InvalidPhoneNumber")
    africastalking_server.statuses[BLOCKED] = (406, "UserInBlacklist")
    africastalking_server.statuses[RISK] = (401, "RiskHold")  # our account's trouble, not the number's
    return africastalking_server


@pytest.fixture
def smtp(settings, smtp_server):
    for name, value in smtp_server.django_settings().items():
        setattr(settings, name, value)
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, email="notifications.backends.email.EmailBackend"
    )
    smtp_server.refuse("gone@example.org", "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown")
    smtp_server.refuse("nouser@example.org", "550 Requested action not taken: user unknown")
    smtp_server.refuse("spam@example.org", "550 5.7.1 Message rejected as spam")
    smtp_server.refuse("busy@example.org", "451 4.2.1 Mailbox busy, try again later")
    return smtp_server


@pytest.fixture
def postmark(settings):
    with PostmarkServer() as server:
        settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
        settings.ANYMAIL = server.anymail_settings
        settings.NOTIFICATION_BACKENDS = backend_settings(
            settings.NOTIFICATION_BACKENDS, email="notifications.backends.email.EmailBackend"
        )
        server.invalid.add("bad@example.org")
        server.inactive.add("inactive@example.org")
        yield server


def send(platform, source, channel, *addresses):
    return notification_send(
        platform=platform,
        source=source,
        channels=[channel],
        recipients=[Recipient(address=a) for a in addresses],
        message=Message(title="Exam", body="Your exam starts at 9:00."),
    )


def listed(platform) -> dict[str, tuple[str, str]]:
    return {s.address: (s.reason, s.source) for s in Suppression.objects.filter(platform=platform)}


def statuses(source) -> dict[str, tuple[str, str]]:
    return {r.address: (r.delivery_status, r.rule) for r in Notification.objects.filter(source=source)}


def numbers_sent_to(server) -> list[str]:
    return [n for request in server.requests for n in request.form["to"].split(",")]


# -- SMS ---------------------------------------------------------------------------------


def test_invalid_and_blacklisted_numbers_are_suppressed_and_skipped_next_time(africastalking, platform):
    first = send(platform, "sms:first", "sms", OK, INVALID, BLOCKED, RISK)

    assert (first.sent, first.failed, first.suppressed) == (1, 3, 0)
    assert listed(platform) == {
        INVALID: ("invalid_number", "africastalking"),
        BLOCKED: ("invalid_number", "africastalking"),
    }
    entry = Suppression.objects.get(platform=platform, address=INVALID)
    assert entry.notification_id == Notification.objects.get(source="sms:first", address=INVALID).pk
    assert entry.detail == "Africa's Talking refused: 403 InvalidPhoneNumber"
    assert entry.notification_type == ""  # every type

    africastalking.requests.clear()
    second = send(platform, "sms:second", "sms", OK, INVALID, BLOCKED, RISK)

    assert (second.sent, second.failed, second.suppressed) == (1, 1, 2)
    assert statuses("sms:second") == {
        OK: (DeliveryStatus.SENT, ""),
        INVALID: (DeliveryStatus.SUPPRESSED, DeliveryRule.SUPPRESSION_LIST),
        BLOCKED: (DeliveryStatus.SUPPRESSED, DeliveryRule.SUPPRESSION_LIST),
        RISK: (DeliveryStatus.FAILED, ""),
    }
    assert sorted(numbers_sent_to(africastalking)) == [OK, RISK]  # the listed numbers never left


def test_a_batch_sent_again_lists_each_number_once(africastalking, platform):
    # Two sends in one batch name the same number; then the batch's outcome is lost and it goes again.
    notification_send_many(
        sends=[
            Send(
                platform=platform,
                source=source,
                channels=["sms"],
                recipients=[Recipient(address=INVALID), Recipient(address=OK)],
                message=Message(title="Exam", body="Your exam starts at 9:00."),
            )
            for source in ("sms:a", "sms:b")
        ]
    )
    assert Suppression.objects.filter(platform=platform).count() == 1
    first = Suppression.objects.get(platform=platform)

    Notification.objects.filter(source="sms:a", address=INVALID).update(
        delivery_status=DeliveryStatus.PENDING, attempts=0, error="", claimed_until=None, next_attempt_at=None
    )
    deliveries_dispatch(source="sms:a", channel="sms")

    assert Notification.objects.get(source="sms:a", address=INVALID).delivery_status == DeliveryStatus.FAILED
    assert list(Suppression.objects.filter(platform=platform).values_list("pk", "notification_id")) == [
        (first.pk, first.notification_id)
    ]


def test_another_platforms_list_is_untouched(africastalking, platform):
    other = PlatformFactory(key="other-school")
    send(platform, "sms:ours", "sms", INVALID)
    assert listed(platform) == {INVALID: ("invalid_number", "africastalking")}
    assert listed(other) == {}

    africastalking.statuses.clear()  # on the other platform's send the number goes through
    theirs = send(other, "sms:theirs", "sms", INVALID)
    assert (theirs.sent, theirs.suppressed) == (1, 0)


# -- email over SMTP -----------------------------------------------------------------------


def test_unknown_mailboxes_are_suppressed_and_policy_refusals_are_not(smtp, platform):
    addresses = ("ok@example.org", "gone@example.org", "nouser@example.org", "spam@example.org", "busy@example.org")
    first = send(platform, "mail:first", "email", *addresses)

    assert (first.sent, first.failed, first.pending) == (1, 3, 1)  # 451: a retry later
    assert listed(platform) == {
        "gone@example.org": ("hard_bounce", "smtp"),
        "nouser@example.org": ("hard_bounce", "smtp"),
    }
    assert "5.1.1" in Suppression.objects.get(address="gone@example.org").detail

    smtp.mails.clear()
    second = send(platform, "mail:second", "email", *addresses)

    assert (second.sent, second.failed, second.suppressed) == (1, 1, 2)
    found = statuses("mail:second")
    assert found["gone@example.org"] == found["nouser@example.org"] == ("suppressed", "suppression_list")
    assert found["spam@example.org"] == (DeliveryStatus.FAILED, "")  # refused again, never listed
    assert [m.rcpt_tos for m in smtp.mails] == [["ok@example.org"]]


@pytest.mark.parametrize(
    ("code", "reply", "refused"),
    [
        (550, "5.1.1 The email account that you tried to reach does not exist.", True),
        (550, "5.1.0 Address rejected", True),
        (550, "5.1.10 Recipient address has null MX", True),
        (553, "5.1.3 Bad recipient address syntax", True),
        (550, "User unknown", True),
        (550, "<x@example.org>: Recipient address rejected: User unknown in local recipient table", True),
        (550, "No such user here", True),
        (550, "5.7.1 User unknown", False),  # the enhanced code decides: policy
        (550, "5.7.1 Relaying denied", False),
        (554, "5.7.1 Message rejected as spam", False),
        (550, "5.1.8 Sender address rejected: Domain not found", False),  # about us, the sender
        (550, "Sender address rejected: user unknown", False),
        (550, "Requested action not taken: mailbox unavailable", False),
        (450, "4.1.1 Recipient address verification in progress", False),
        (450, "User unknown, try later", False),
        (554, "Transaction failed", False),
    ],
)
def test_which_smtp_refusals_say_the_address_is_bad(code, reply, refused):
    assert smtp_address_refused(code, reply) is refused


# -- email through anymail -----------------------------------------------------------------


def test_an_address_the_provider_calls_invalid_is_suppressed_an_inactive_one_is_not(postmark, platform):
    first = send(platform, "mail:pm1", "email", "ok@example.org", "bad@example.org", "inactive@example.org")

    assert (first.sent, first.failed) == (1, 2)
    assert listed(platform) == {"bad@example.org": ("hard_bounce", "Postmark")}

    postmark.requests.clear()
    second = send(platform, "mail:pm2", "email", "ok@example.org", "bad@example.org", "inactive@example.org")

    assert (second.sent, second.failed, second.suppressed) == (1, 1, 1)
    assert statuses("mail:pm2")["bad@example.org"] == (DeliveryStatus.SUPPRESSED, DeliveryRule.SUPPRESSION_LIST)
    assert sorted(r.json["To"] for r in postmark.requests) == ["inactive@example.org", "ok@example.org"]

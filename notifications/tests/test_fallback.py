"""Channel fallback and escalation in the pipeline: push over the FCM v1 fake, SMS and email on the test backend."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from fcm_django.models import FCMDevice

from notifications import scheduler
from notifications.backends import locmem
from notifications.models import DeliveryPlan, DeliveryStatus, InboxStatus, Notification
from notifications.pipeline import Message, Recipient, notification_send
from notifications.pipeline.policies import Policy, register_policy_lookup
from notifications.tests.fakes import backend_settings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_only")]

PUSH, SMS, EMAIL, IN_APP = "push_notification", "sms", "email", "in_app"


@pytest.fixture
def fcm(settings, fcm_server):
    settings.FCM = fcm_server.settings
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, push="notifications.backends.push.FCMBackend"
    )
    return fcm_server


def device(user, token):
    return FCMDevice.objects.create(user=user, registration_id=token, type="android", active=True, name=token)


def push(platform, source, users, **kwargs):
    return notification_send(
        platform=platform,
        source=source,
        channels=kwargs.pop("channels", [PUSH]),
        recipients=[Recipient(user_id=u.id) for u in users],
        message=Message(title="Exam tomorrow", body="Your exam starts at 9:00.", notification_type="exam_reminder"),
        **kwargs,
    )


def rows(source, user) -> dict[str, Notification]:
    return {n.channel: n for n in Notification.objects.filter(source=source, recipient_key=f"user:{user.id}")}


def test_no_active_device_falls_back_to_sms_once(fcm, platform, make_user):
    jane = make_user("jane", phone_number="+251911000001")
    bob = make_user("bob", phone_number="+251911000002")
    device(bob, "tok-bob")

    result = push(platform, "bulk:fb1", [jane, bob], fallback_channel=SMS)

    jane_rows = rows("bulk:fb1", jane)
    # The push is recorded as what it was: failed, no device reached ...
    assert jane_rows[PUSH].delivery_status == DeliveryStatus.FAILED
    assert jane_rows[PUSH].error == "No active push device"
    assert (jane_rows[PUSH].units_sent, jane_rows[PUSH].units_failed) == (0, 0)
    # ... and the SMS is a delivery of its own, marked as the fallback.
    assert jane_rows[SMS].rule == "fallback"
    assert jane_rows[SMS].delivery_status == DeliveryStatus.SENT
    assert jane_rows[SMS].address == "+251911000001"
    assert set(rows("bulk:fb1", bob)) == {PUSH}  # reached by push: no SMS
    assert fcm.tokens_sent_to() == ["tok-bob"]
    assert [m["address"] for m in locmem.outbox["sms"]] == ["+251911000001"]
    assert locmem.outbox["sms"][0]["body"] == "Your exam starts at 9:00."
    assert result.per_channel[SMS] == {"sent": 1, "failed": 0, "pending": 0, "suppressed": 0}
    assert result.total_recipients == 2

    # The whole send again (a retried request, a resumed job): nothing more is written or sent.
    again = push(platform, "bulk:fb1", [jane, bob], fallback_channel=SMS)
    assert Notification.objects.filter(source="bulk:fb1").count() == 3
    assert len(locmem.outbox["sms"]) == 1
    assert fcm.tokens_sent_to() == ["tok-bob"]
    assert again.per_channel == result.per_channel


def test_push_refused_for_good_falls_back_once_and_a_retry_writes_nothing(fcm, platform, make_user):
    jane = make_user("jane", phone_number="+251911000001")
    device(jane, "tok-dead")
    fcm.fail("tok-dead", "unregistered")  # HTTP 404 NOT_FOUND, errorCode UNREGISTERED

    push(platform, "bulk:fb2", [jane], fallback_channel=SMS)

    jane_rows = rows("bulk:fb2", jane)
    assert jane_rows[PUSH].delivery_status == DeliveryStatus.FAILED
    assert "UNREGISTERED" in jane_rows[PUSH].error
    assert jane_rows[SMS].rule == "fallback"
    assert jane_rows[SMS].delivery_status == DeliveryStatus.SENT
    assert jane_rows[SMS].body == "Your exam starts at 9:00."  # the push's content
    assert [m["address"] for m in locmem.outbox["sms"]] == ["+251911000001"]
    assert len(fcm.tokens_sent_to()) == 1

    push(platform, "bulk:fb2", [jane], fallback_channel=SMS)
    scheduler.sweep(now=timezone.now() + timedelta(hours=2))  # nothing is left for the sweep either
    assert Notification.objects.filter(source="bulk:fb2").count() == 2
    assert len(locmem.outbox["sms"]) == 1
    assert len(fcm.tokens_sent_to()) == 1


def test_retryable_push_failure_does_not_fall_back(fcm, platform, make_user):
    jane = make_user("jane", phone_number="+251911000001")
    device(jane, "tok-busy")
    fcm.fail("tok-busy", "unavailable")  # 503: may work later, so no second channel yet

    push(platform, "bulk:fb3", [jane], fallback_channel=SMS)

    assert set(rows("bulk:fb3", jane)) == {PUSH}
    assert rows("bulk:fb3", jane)[PUSH].delivery_status == DeliveryStatus.PENDING
    assert locmem.outbox["sms"] == []


def test_a_row_on_the_fallback_channel_already_gets_nothing_more(fcm, platform, make_user):
    jane = make_user("jane", phone_number="+251911000001")

    push(platform, "bulk:fb4", [jane], channels=[PUSH, SMS], fallback_channel=SMS)

    jane_rows = rows("bulk:fb4", jane)
    assert jane_rows[SMS].rule == ""  # the send's own SMS, not a second one
    assert len(locmem.outbox["sms"]) == 1


def test_no_address_on_the_fallback_channel_is_a_failed_fallback(fcm, platform, make_user):
    jane = make_user("jane", phone_number="")

    push(platform, "bulk:fb5", [jane], fallback_channel=SMS)

    sms = rows("bulk:fb5", jane)[SMS]
    assert (sms.rule, sms.delivery_status, sms.error) == ("fallback", "failed", "User has no phone number")
    assert locmem.outbox["sms"] == []


def test_fallback_to_a_switched_off_channel_is_not_written(fcm, platform, make_user):
    jane = make_user("jane", email="jane@example.com")
    platform.push_enabled = False
    platform.save()
    locmem.fail_for["jane@example.com"] = "550 no such user"

    notification_send(
        platform=platform,
        source="bulk:fb6",
        channels=[EMAIL],
        recipients=[Recipient(user_id=jane.id)],
        message=Message(title="Hi", body="Hello"),
        fallback_channel=PUSH,
    )
    assert rows("bulk:fb6", jane)[EMAIL].delivery_status == DeliveryStatus.FAILED
    assert set(rows("bulk:fb6", jane)) == {EMAIL}


@pytest.fixture
def type_policy():
    """A policy lookup as an app registers one (templates_app keeps them with the templates)."""
    policies: dict[str, Policy] = {}

    def lookup(*, platform_id, notification_types):
        return {t: policies[t] for t in notification_types if t in policies}

    register_policy_lookup(lookup)
    yield policies
    from notifications.pipeline import policies as module

    module._LOOKUPS.remove(lookup)


def test_email_refused_for_good_falls_back_by_the_types_policy(platform, make_user, type_policy):
    type_policy["grade_posted"] = Policy(fallback={EMAIL: SMS})
    jane = make_user("jane", email="jane@example.com", phone_number="+251911000001")
    locmem.fail_for["jane@example.com"] = "550 5.1.1 mailbox unavailable"

    notification_send(
        platform=platform,
        source="event:fb7",
        channels=[EMAIL],
        recipients=[Recipient(user_id=jane.id)],
        message=Message(title="Grade", body="Your grade is posted.", notification_type="grade_posted"),
    )

    jane_rows = rows("event:fb7", jane)
    assert jane_rows[EMAIL].delivery_status == DeliveryStatus.FAILED
    assert (jane_rows[SMS].rule, jane_rows[SMS].delivery_status) == ("fallback", DeliveryStatus.SENT)
    assert DeliveryPlan.objects.get(source="event:fb7").fallback == {EMAIL: SMS}


def in_app(platform, source, users, type_="assignment_due"):
    return notification_send(
        platform=platform,
        source=source,
        channels=[IN_APP],
        recipients=[Recipient(user_id=u.id) for u in users],
        message=Message(title="Assignment due", body="Submit by Friday.", notification_type=type_),
    )


def test_unread_in_app_escalates_to_email_once_after_the_wait(platform, make_user, type_policy):
    type_policy["assignment_due"] = Policy(escalation_channel=EMAIL, escalation_after_seconds=30 * 60)
    jane = make_user("jane", email="jane@example.com")
    bob = make_user("bob", email="bob@example.com")
    amir = make_user("amir", email="amir@example.com")
    sent_at = timezone.now()

    in_app(platform, "bulk:esc1", [jane, bob, amir])
    Notification.objects.filter(source="bulk:esc1", user=bob).update(status=InboxStatus.READ)
    assert locmem.outbox["email"] == []

    # Ten minutes on: not due.
    assert scheduler.sweep(now=sent_at + timedelta(minutes=10))["escalations"] == 0
    assert locmem.outbox["email"] == []

    # Thirty-one minutes on: the unread ones get an email, the one who read it does not.
    assert scheduler.sweep(now=sent_at + timedelta(minutes=31))["escalations"] == 1
    assert sorted(m["address"] for m in locmem.outbox["email"]) == ["amir@example.com", "jane@example.com"]
    escalated = Notification.objects.filter(source="bulk:esc1", channel=EMAIL)
    assert {n.rule for n in escalated} == {"escalation"}
    assert {n.title for n in escalated} == {"Assignment due"}
    assert not escalated.filter(user=bob).exists()

    # Later sweeps, a re-run of the send and a plan claimed again send nothing more.
    assert scheduler.sweep(now=sent_at + timedelta(minutes=90))["escalations"] == 0
    in_app(platform, "bulk:esc1", [jane, bob, amir])
    scheduler.sweep(now=sent_at + timedelta(minutes=200))
    plan = DeliveryPlan.objects.get(source="bulk:esc1")
    from notifications.pipeline.escalation import escalation_run

    escalation_run(item_id={"plan": plan.pk, "now": (sent_at + timedelta(minutes=300)).isoformat()})
    assert len(locmem.outbox["email"]) == 2
    assert Notification.objects.filter(source="bulk:esc1", channel=EMAIL).count() == 2


def test_no_escalation_when_everyone_read_it(platform, make_user, type_policy):
    type_policy["assignment_due"] = Policy(escalation_channel=SMS, escalation_after_seconds=60)
    jane = make_user("jane", phone_number="+251911000001")
    sent_at = timezone.now()
    in_app(platform, "bulk:esc2", [jane])
    Notification.objects.filter(source="bulk:esc2").update(status=InboxStatus.READ)

    scheduler.sweep(now=sent_at + timedelta(minutes=5))

    assert locmem.outbox["sms"] == []
    assert not Notification.objects.filter(source="bulk:esc2", channel=SMS).exists()
    assert DeliveryPlan.objects.get(source="bulk:esc2").escalation_due_at is None  # nothing left to watch


def test_types_without_a_policy_write_no_plan(platform, make_user, type_policy):
    jane = make_user("jane")
    in_app(platform, "bulk:esc3", [jane], type_="other_type")
    assert not DeliveryPlan.objects.exists()


def test_old_plans_are_purged_unless_an_escalation_waits(platform, make_user, type_policy, settings):
    from notifications.pipeline.policies import delivery_plans_purge

    type_policy["assignment_due"] = Policy(fallback={PUSH: SMS}, escalation_channel=EMAIL, escalation_after_seconds=60)
    jane = make_user("jane")
    in_app(platform, "bulk:old-done", [jane])
    in_app(platform, "bulk:old-waiting", [jane])
    DeliveryPlan.objects.filter(source="bulk:old-done").update(escalation_due_at=None)
    settings.DELIVERY_PLAN_RETENTION_DAYS = 7

    assert delivery_plans_purge(now=timezone.now() + timedelta(days=6)) == 0
    assert delivery_plans_purge(now=timezone.now() + timedelta(days=8)) == 1
    assert list(DeliveryPlan.objects.values_list("source", flat=True)) == ["bulk:old-waiting"]

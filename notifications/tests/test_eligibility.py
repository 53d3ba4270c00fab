"""The front door's own decisions: who gets which channel, the one retry policy, the queues it is handed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import scheduler
from notifications.backends import locmem
from notifications.channels import Channel
from notifications.models import Notification
from notifications.pipeline import Message, Recipient, Send, eligibility, notification_send, notification_send_many
from notifications.pipeline.counts import recipient_outcomes
from notifications.pipeline.retry import RetryPolicy

pytestmark = pytest.mark.django_db

MESSAGE = Message(title="Welcome", body="Hello there")
ALL = [Channel.IN_APP, Channel.EMAIL, Channel.SMS, Channel.PUSH]


@pytest.fixture
def member(make_user):
    user = make_user("learner")
    user.phone_number = "+251911000001"
    user.save(update_fields=["phone_number"])
    return user


def _rows(source):
    return sorted(Notification.objects.filter(source=source).values_list("recipient_key", "channel"))


def test_users_and_bare_addresses_go_in_one_call_each_getting_the_channels_it_can_take(platform, member):
    result = notification_send(
        platform=platform,
        source="bulk:mixed",
        channels=ALL,
        recipients=[
            Recipient(user_id=member.pk),
            Recipient(address="guest@example.org"),
            Recipient(address="+251911000002"),
        ],
        message=MESSAGE,
    )
    user = f"user:{member.pk}"
    assert _rows("bulk:mixed") == sorted(
        [
            (user, Channel.IN_APP),
            (user, Channel.EMAIL),
            (user, Channel.SMS),
            (user, Channel.PUSH),
            ("email:guest@example.org", Channel.EMAIL),
            ("phone:+251911000002", Channel.SMS),
        ]
    )
    assert result.total_recipients == 3


def test_an_address_that_is_neither_email_nor_phone_is_left_to_the_address_channels_backends(platform):
    notification_send(
        platform=platform,
        source="bulk:typo",
        channels=ALL,
        recipients=[Recipient(address="not-an-address")],
        message=MESSAGE,
    )
    # Not silently dropped: the email and SMS backends refuse it with a reason (test_backend_email.py).
    assert {channel for _, channel in _rows("bulk:typo")} == {Channel.EMAIL, Channel.SMS}


def test_a_platform_with_push_switched_off_sends_no_push_on_any_path(platform, member):
    platform.push_enabled = False
    platform.save(update_fields=["push_enabled"])
    notification_send(
        platform=platform,
        source="bulk:nopush",
        channels=[Channel.PUSH, Channel.IN_APP],
        recipients=[Recipient(user_id=member.pk)],
        message=MESSAGE,
    )
    counts = notification_send_many(
        sends=[
            Send(
                platform=platform,
                source="scheduled:nopush",
                channels=[Channel.PUSH],
                recipients=[Recipient(user_id=member.pk)],
                message=MESSAGE,
            )
        ]
    )
    assert {channel for _, channel in _rows("bulk:nopush")} == {Channel.IN_APP}
    assert counts["scheduled:nopush"].total_recipients == 0
    assert locmem.outbox["push"] == []
    assert eligibility.platform_channels(platform=platform, channels=ALL) == (
        Channel.IN_APP,
        Channel.EMAIL,
        Channel.SMS,
    )


def test_recipient_outcomes_say_where_each_recipient_of_a_send_stands(platform, member):
    notification_send(
        platform=platform,
        source="build:outcomes",
        channels=[Channel.EMAIL, Channel.IN_APP],
        recipients=[Recipient(user_id=member.pk), Recipient(address="guest@example.org")],
        message=MESSAGE,
    )
    Notification.objects.filter(source="build:outcomes", recipient_key="email:guest@example.org").update(
        delivery_status="failed", error="550 no such user"
    )
    outcomes = recipient_outcomes(
        source="build:outcomes", keys=[f"user:{member.pk}", "email:guest@example.org", "user:0"]
    )
    assert outcomes[f"user:{member.pk}"].sent
    guest = outcomes["email:guest@example.org"]
    assert (guest.sent, guest.pending, guest.errors) == (False, False, ("email: 550 no such user",))
    assert "user:0" not in outcomes


def test_the_retry_policy_backs_off_exponentially_up_to_its_cap_and_counts_attempts(settings):
    policy = RetryPolicy(max_attempts=3, base_seconds=10, cap_seconds=35, max_attempts_setting="TEST_ATTEMPTS")
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [10, 20, 35, 35]
    assert policy.delay(1, retry_after=60) == 60  # a provider's Retry-After wins
    assert (policy.exhausted(2), policy.exhausted(3)) == (False, True)
    settings.TEST_ATTEMPTS = 5
    assert not policy.exhausted(3)


def test_the_sweep_uses_the_queue_it_is_handed(platform, member):
    from notifications.pipeline.write import deliveries_write

    deliveries_write(
        platform=platform,
        source="bulk:handed",
        channels=[Channel.EMAIL],
        recipients=[Recipient(user_id=member.pk)],
        message=MESSAGE,
    )
    Notification.objects.filter(source="bulk:handed").update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    handed = []
    queue = scheduler.Enqueue(
        item=lambda source, item_id: handed.append((source, item_id)),
        items=lambda source, ids: handed.append((source, ids)),
        sweep_at=lambda at: None,
        runs_inline=lambda: False,
    )
    assert scheduler.sweep(enqueue=queue)["deliveries"] == 1
    [(_, item)] = [h for h in handed if h[0] == "deliveries"]
    assert item["channel"] == Channel.EMAIL and len(item["ids"]) == 1
    assert locmem.outbox["email"] == []  # handed over, not run here

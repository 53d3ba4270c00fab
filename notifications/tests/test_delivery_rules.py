"""The front door's delivery rules: rows that go now, wait until a time, or are held back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifications import scheduler
from notifications.backends import locmem
from notifications.backends.in_app import _event
from notifications.channels import Channel
from notifications.models import DeliveryRule, Notification
from notifications.pipeline import Message, Recipient, notification_send, rules
from notifications.pipeline.counts import send_counts
from notifications.realtime import socket_frame

pytestmark = pytest.mark.django_db

MESSAGE = Message(title="Reminder", body="Class starts soon")
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Scripted:
    """A rule that defers, suppresses or silences chosen recipients (keys), non-critical rows only."""

    def __init__(self):
        self.defer: dict[str, datetime] = {}
        self.suppress: set[str] = set()
        self.silence: set[str] = set()
        self.calls = 0

    def __call__(self, *, platform, rows, now):
        self.calls += 1
        decisions = {}
        for row in rows:
            if row.critical:
                continue
            if row.recipient_key in self.defer:
                decisions[row.index] = rules.Decision.defer(DeliveryRule.QUIET_HOURS, self.defer[row.recipient_key])
            elif row.recipient_key in self.suppress:
                decisions[row.index] = rules.Decision.suppress(DeliveryRule.FREQUENCY_CAP)
            elif row.recipient_key in self.silence:
                decisions[row.index] = rules.Decision.silence(DeliveryRule.QUIET_HOURS)
        return decisions


@pytest.fixture
def scripted():
    rule = Scripted()
    rules.register_rule(rules.Rule(name="scripted", decide=rule))
    yield rule
    rules.unregister_rule("scripted")


@pytest.fixture
def members(make_user):
    users = []
    for i in range(6):
        user = make_user(f"learner{i}")
        user.phone_number = f"+25191100000{i}"
        user.save(update_fields=["phone_number"])
        users.append(user)
    return users


def _send(platform, members, source="bulk:rules", channels=(Channel.SMS,), message=MESSAGE):
    return notification_send(
        platform=platform,
        source=source,
        channels=list(channels),
        recipients=[Recipient(user_id=u.pk) for u in members],
        message=message,
    )


def _sent_keys():
    return sorted(m["recipient_key"] for m in locmem.outbox["sms"])


def test_without_a_decision_rows_are_written_and_sent_as_before(platform, members, scripted):
    result = _send(platform, members)
    assert (result.sent, result.pending, result.suppressed) == (6, 0, 0)
    assert set(Notification.objects.values_list("rule", flat=True)) == {""}
    assert scripted.calls == 1  # one call for the chunk, not one per row


def test_deferred_rows_wait_for_their_time_and_go_out_once_through_the_sweep(platform, members, scripted, clock):
    clock.set(START)
    later = START + timedelta(hours=8)
    deferred = {f"user:{u.pk}" for u in members[:3]}
    scripted.defer = dict.fromkeys(deferred, later)

    result = _send(platform, members)
    assert (result.total_recipients, result.sent, result.pending, result.failed) == (6, 3, 3, 0)
    assert set(_sent_keys()) == {f"user:{u.pk}" for u in members[3:]}
    waiting = Notification.objects.filter(delivery_status="pending")
    assert {(r.recipient_key, r.rule, r.next_attempt_at, r.attempts) for r in waiting} == {
        (key, DeliveryRule.QUIET_HOURS, later, 0) for key in deferred
    }

    # Not before its time: neither a re-run of the send nor the sweep takes them.
    _send(platform, members)
    assert scheduler.sweep().get("deliveries", 0) == 0
    clock.set(later - timedelta(seconds=1))
    assert scheduler.sweep().get("deliveries", 0) == 0
    assert len(locmem.outbox["sms"]) == 3

    clock.set(later)
    assert scheduler.sweep()["deliveries"] == 1  # one queued item: the three rows of the channel
    assert scheduler.sweep().get("deliveries", 0) == 0
    assert _sent_keys() == sorted(f"user:{u.pk}" for u in members)  # each exactly once
    counts = send_counts(source="bulk:rules")
    assert (counts.sent, counts.pending) == (6, 0)
    # The rule stays on the row: deliveries show why it went late.
    assert Notification.objects.filter(rule=DeliveryRule.QUIET_HOURS, delivery_status="sent").count() == 3


def test_suppressed_rows_are_never_sent_and_are_counted(platform, members, scripted):
    scripted.suppress = {f"user:{members[0].pk}"}
    result = _send(platform, members, channels=(Channel.SMS, Channel.IN_APP))
    assert result.suppressed == 2
    assert result.per_channel["sms"] == {"sent": 5, "failed": 0, "pending": 0, "suppressed": 1}
    assert result.total_recipients == 6
    row = Notification.objects.get(recipient_key=f"user:{members[0].pk}", channel="sms")
    assert (row.delivery_status, row.rule, row.next_attempt_at, row.attempts) == (
        "suppressed",
        DeliveryRule.FREQUENCY_CAP,
        None,
        0,
    )
    assert f"user:{members[0].pk}" not in _sent_keys()
    assert scheduler.sweep().get("deliveries", 0) == 0


def test_critical_messages_and_types_reach_the_rule_marked_critical(platform, members, scripted, clock):
    clock.set(START)
    scripted.defer = {f"user:{u.pk}": START + timedelta(hours=1) for u in members}
    result = _send(platform, members, source="alert:1", message=Message(title="Outage", critical=True))
    assert (result.sent, result.pending) == (6, 0)
    # ROLE_CHANGE is a critical type in the shipped defaults (templates_app registers them).
    result = _send(platform, members, source="event:1", message=Message(title="Role", notification_type="ROLE_CHANGE"))
    assert (result.sent, result.pending) == (6, 0)
    result = _send(platform, members, source="bulk:plain")
    assert (result.sent, result.pending) == (0, 6)


def test_a_silenced_in_app_row_is_written_at_once_and_announced_without_sound(platform, members, scripted):
    scripted.silence = {f"user:{members[0].pk}"}
    result = _send(platform, members[:2], channels=(Channel.IN_APP,))
    assert result.sent == 2
    rows = {r.recipient_key: r for r in Notification.objects.all()}
    quiet, loud = rows[f"user:{members[0].pk}"], rows[f"user:{members[1].pk}"]
    assert (quiet.delivery_status, quiet.rule) == ("sent", DeliveryRule.QUIET_HOURS)
    assert '"silent": true' in socket_frame(_event(quiet))
    assert "silent" not in socket_frame(_event(loud))


def test_rules_run_in_order_and_a_deferred_row_is_not_shown_to_later_ones(platform, members, scripted, clock):
    clock.set(START)
    scripted.defer = {f"user:{members[0].pk}": START + timedelta(hours=2)}
    seen = []

    def later_rule(*, platform, rows, now):
        seen.extend(r.recipient_key for r in rows)
        return {r.index: rules.Decision.suppress(DeliveryRule.SUPPRESSION_LIST) for r in rows}

    rules.register_rule(rules.Rule(name="later", decide=later_rule, order=200))
    try:
        result = _send(platform, members[:2])
    finally:
        rules.unregister_rule("later")
    assert seen == [f"user:{members[1].pk}"]
    assert (result.pending, result.suppressed) == (1, 1)


def test_a_rule_that_does_not_apply_is_not_asked(platform, members):
    asked = []
    rule = rules.Rule(
        name="sms-only",
        decide=lambda **kw: asked.append(kw) or {},
        applies=lambda *, platform, channels: Channel.SMS in channels,
    )
    rules.register_rule(rule)
    try:
        _send(platform, members, channels=(Channel.IN_APP,))
        assert asked == []
        _send(platform, members, source="bulk:sms")
        assert len(asked) == 1
    finally:
        rules.unregister_rule("sms-only")


def test_rows_that_failed_on_write_are_not_shown_to_rules(platform, members, scripted, make_user):
    seen = []

    def watch(*, platform, rows, now):
        seen.extend(r.recipient_key for r in rows)
        return {}

    rules.register_rule(rules.Rule(name="watch", decide=watch))
    try:
        nophone = make_user("nophone", phone_number="")
        _send(platform, [members[0], nophone])
    finally:
        rules.unregister_rule("watch")
    assert seen == [f"user:{members[0].pk}"]

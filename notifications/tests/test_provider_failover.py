"""Provider failover for SMS: AfroMessage first, Africa's Talking second, both as loopback fakes.

Only deliveries AfroMessage definitely refused move; timeouts stay with it.
The circuit breaker's state is in the test Redis, shared like between workers.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.utils import timezone

from notifications import circuits
from notifications.models import DeliveryRule, DeliveryStatus, Notification
from notifications.pipeline import Message, Recipient, notification_send
from notifications.pipeline.dispatch import deliveries_dispatch
from notifications.tests.test_operations import delta, scrape

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_only")]

AFROMESSAGE = "notifications.backends.sms.AfroMessageBackend"
AFRICASTALKING = "notifications.backends.africastalking.AfricasTalkingBackend"
SUCCESS = {"acknowledge": "success", "response": {"status": "Send", "message_id": "late", "message": "", "to": ""}}


@pytest.fixture
def providers(settings, afromessage_server, africastalking_server):
    settings.AFROMESSAGE = afromessage_server.settings
    settings.AFRICASTALKING = africastalking_server.settings
    settings.NOTIFICATION_BACKENDS = {
        **settings.NOTIFICATION_BACKENDS,
        "sms": [{"BACKEND": AFROMESSAGE, "OPTIONS": {}}, {"BACKEND": AFRICASTALKING, "OPTIONS": {}}],
    }
    settings.NOTIFY_CIRCUIT_FAILURES = 3
    settings.NOTIFY_CIRCUIT_COOLDOWN_SECONDS = 60
    return afromessage_server, africastalking_server


def phones(n, start=0):
    return [f"+2519110{i:05d}" for i in range(start, start + n)]


def send(platform, source, numbers, *, personal=False):
    """One text for all (AfroMessage bulk_send), or one per recipient (one /send each)."""

    def render(recipient, channel, user):
        return Message(body=f"Hello {recipient.address[-5:]}")

    return notification_send(
        platform=platform,
        source=source,
        channels=["sms"],
        recipients=[Recipient(address=p) for p in numbers],
        **({"render": render} if personal else {"message": Message(body="Classes resume on Monday.")}),
    )


def afromessage_numbers(server) -> list[str]:
    """Numbers AfroMessage was asked to send to (single and bulk calls)."""
    found = []
    for request in server.requests:
        to = request.params.get("to")
        found.extend(to if isinstance(to, list) else [to])
    return found


def circuit():
    return circuits.circuits_read(channel="sms", providers=["afromessage"])["afromessage"]


def wait_for_state(state, limit=10.0):
    deadline = time.monotonic() + limit
    while circuit().state() != state:
        assert time.monotonic() < deadline, f"the circuit never became {state}"
        time.sleep(0.05)


def test_outage_503_every_recipient_goes_out_once_through_africas_talking(providers, platform):
    afromessage, africastalking = providers
    afromessage.reply_always(503, {"acknowledge": "error", "response": {"errors": ["Service Unavailable"]}})
    numbers = phones(250)

    result = send(platform, "bulk:outage", numbers, personal=True)

    assert (result.sent, result.failed, result.pending) == (250, 0, 0)
    # Nobody twice: every number accepted exactly once, by Africa's Talking.
    assert Counter(africastalking.accepted) == Counter(numbers)
    rows = Notification.objects.filter(source="bulk:outage")
    assert {(r.delivery_status, r.provider, r.rule, r.attempts) for r in rows} == {
        (DeliveryStatus.SENT, "africastalking", DeliveryRule.FAILOVER, 1)
    }
    assert all(r.provider_message_id.startswith("ATXid_") for r in rows)
    # The breaker opened after three refusals in a row: AfroMessage saw no more calls.
    assert len(afromessage.requests) == 3
    assert circuit().state() == circuits.OPEN and circuit().opens == 1


def test_outage_503_on_bulk_calls_fails_over_each_batch(providers, platform):
    afromessage, africastalking = providers
    afromessage.reply_always(503, {})
    numbers = phones(230)

    result = send(platform, "bulk:outage-bulk", numbers)

    assert result.sent == 230
    assert Counter(africastalking.accepted) == Counter(numbers)
    # One bulk_send per batch of 100 was refused; three refusals opened the circuit.
    assert [r.path for r in afromessage.requests] == ["/api/bulk_send"] * 3


def test_timeouts_never_fail_over(providers, platform, settings):
    afromessage, africastalking = providers
    settings.AFROMESSAGE = {**afromessage.settings, "TIMEOUT": 0.3}
    settings.NOTIFY_MAX_ATTEMPTS = 2
    afromessage.reply_always(200, SUCCESS, delay=1.0)
    numbers = phones(3)  # three timeouts: exactly the run that opens the circuit

    result = send(platform, "bulk:slow", numbers, personal=True)

    assert (result.sent, result.failed, result.pending) == (0, 0, 3)
    rows = list(Notification.objects.filter(source="bulk:slow"))
    # AfroMessage may have sent them: they stay with it, for a retry there.
    assert {(r.provider, r.rule, r.attempts) for r in rows} == {("afromessage", "", 1)}
    assert all("timed out" in r.error for r in rows)
    # The timeouts opened the circuit, yet the retries still go to AfroMessage.
    assert circuit().state() == circuits.OPEN
    Notification.objects.filter(source="bulk:slow").update(next_attempt_at=timezone.now())
    deliveries_dispatch(source="bulk:slow", channel="sms")

    rows = list(Notification.objects.filter(source="bulk:slow"))
    assert {(r.delivery_status, r.provider, r.attempts) for r in rows} == {(DeliveryStatus.FAILED, "afromessage", 2)}
    assert africastalking.requests == []
    assert sorted(afromessage_numbers(afromessage)) == sorted(numbers * 2)


def test_timeouts_open_the_circuit_mid_batch_and_only_untried_rows_move(providers, platform, settings):
    afromessage, africastalking = providers
    settings.AFROMESSAGE = {**afromessage.settings, "TIMEOUT": 0.3}
    settings.NOTIFY_CIRCUIT_FAILURES = 2
    afromessage.reply_always(200, SUCCESS, delay=1.0)
    numbers = phones(4)

    result = send(platform, "bulk:slow-batch", numbers, personal=True)

    assert (result.sent, result.pending) == (2, 2)
    rows = {r.address: r for r in Notification.objects.filter(source="bulk:slow-batch")}
    tried, untried = numbers[:2], numbers[2:]
    assert {(rows[p].delivery_status, rows[p].provider) for p in tried} == {(DeliveryStatus.PENDING, "afromessage")}
    assert {(rows[p].delivery_status, rows[p].provider, rows[p].rule) for p in untried} == {
        (DeliveryStatus.SENT, "africastalking", DeliveryRule.FAILOVER)
    }
    assert sorted(afromessage_numbers(afromessage)) == tried
    assert Counter(africastalking.accepted) == Counter(untried)


def test_new_deliveries_avoid_an_open_circuit_but_timed_out_ones_do_not(providers, platform, settings):
    afromessage, africastalking = providers
    settings.AFROMESSAGE = {**afromessage.settings, "TIMEOUT": 0.3}
    settings.NOTIFY_CIRCUIT_FAILURES = 1
    afromessage.reply_always(200, SUCCESS, delay=1.0)
    send(platform, "bulk:first", phones(1), personal=True)  # times out: the circuit opens
    assert circuit().state() == circuits.OPEN

    result = send(platform, "bulk:second", phones(2, start=10), personal=True)

    assert result.sent == 2
    assert Counter(africastalking.accepted) == Counter(phones(2, start=10))
    assert Notification.objects.get(source="bulk:first").delivery_status == DeliveryStatus.PENDING


def test_breaker_opens_cools_down_probes_and_closes(providers, platform, settings):
    afromessage, africastalking = providers
    settings.NOTIFY_CIRCUIT_FAILURES = 2
    settings.NOTIFY_CIRCUIT_COOLDOWN_SECONDS = 1
    afromessage.reply_always(503, {})

    send(platform, "bulk:b1", phones(2), personal=True)
    assert circuit().state() == circuits.OPEN
    assert len(afromessage.requests) == 2

    # Open: new deliveries go straight to Africa's Talking.
    send(platform, "bulk:b2", phones(2, start=10), personal=True)
    assert len(afromessage.requests) == 2
    assert Counter(africastalking.accepted) == Counter(phones(2) + phones(2, start=10))

    # Cool-down over, AfroMessage still down: the one probe fails, the circuit opens again.
    wait_for_state(circuits.HALF_OPEN)
    send(platform, "bulk:b3", phones(2, start=20), personal=True)
    assert len(afromessage.requests) == 3
    assert circuit().state() == circuits.OPEN and circuit().opens == 2
    assert Counter(africastalking.accepted) == Counter(phones(2) + phones(2, start=10) + phones(2, start=20))

    # Cool-down over, AfroMessage back: the probe succeeds and the circuit closes.
    afromessage.always = None
    wait_for_state(circuits.HALF_OPEN)
    result = send(platform, "bulk:b4", phones(2, start=30), personal=True)
    assert result.sent == 2
    assert circuit().state() == circuits.CLOSED and circuit().failures == 0
    rows = {r.address: r for r in Notification.objects.filter(source="bulk:b4")}
    probe, other = phones(2, start=30)
    assert (rows[probe].provider, rows[probe].rule) == ("afromessage", "")
    assert (rows[other].provider, rows[other].rule) == ("africastalking", DeliveryRule.FAILOVER)

    # Closed: everything goes to AfroMessage again.
    send(platform, "bulk:b5", phones(2, start=40), personal=True)
    assert {r.provider for r in Notification.objects.filter(source="bulk:b5")} == {"afromessage"}


def test_every_circuit_open_holds_deliveries_without_spending_attempts(providers, platform, settings):
    afromessage, africastalking = providers
    settings.NOTIFY_CIRCUIT_FAILURES = 1
    afromessage.reply_always(503, {})
    africastalking.reply_always(503, b"Service Unavailable")

    first = send(platform, "bulk:all-down", phones(1), personal=True)
    assert first.pending == 1  # refused by both: a retry later
    assert (
        circuits.circuits_read(channel="sms", providers=["afromessage", "africastalking"])["africastalking"].state()
        == circuits.OPEN
    )

    calls = len(afromessage.requests) + len(africastalking.requests)
    held = send(platform, "bulk:held", phones(1, start=5), personal=True)
    assert held.pending == 1
    row = Notification.objects.get(source="bulk:held")
    assert (row.attempts, row.claimed_until) == (0, None)
    assert row.next_attempt_at > timezone.now()
    assert len(afromessage.requests) + len(africastalking.requests) == calls


def test_a_non_retryable_answer_ends_the_run(providers, platform):
    afromessage, _ = providers
    afromessage.reply_next(503, {})
    afromessage.reply_next(503, {})
    afromessage.reject["+251911000002"] = "+251911000002 is unverified contact number."
    send(platform, "bulk:run", phones(3), personal=True)
    # Two refusals, then an answer (a refusal of one number): the run is over.
    assert circuit().state() == circuits.CLOSED and circuit().failures == 0


def test_metrics_count_failovers_and_circuit_opens(providers, platform):
    afromessage, _ = providers
    afromessage.reply_always(503, {})
    before = scrape()
    send(platform, "bulk:metrics", phones(5), personal=True)
    after = scrape()

    moved = {"channel": "sms", "from_provider": "afromessage", "to_provider": "africastalking"}
    assert delta(before, after, "notify_provider_failovers_total", **moved) == 5
    assert delta(before, after, "notify_circuit_opens_total", channel="sms", provider="afromessage") == 1

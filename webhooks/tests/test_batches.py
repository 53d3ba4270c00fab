"""Delivery in batches: claimed under a lease by one task at a time, posted over kept-alive
connections, recorded with one write of attempts and one of messages per group."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from notifications.tests.factories import PlatformFactory
from webhooks import delivery
from webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage, secret_generate
from webhooks.tests.receiver import WebhookReceiver
from webhooks.tests.test_webhooks import closed_port


@pytest.fixture
def loopback_allowed(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_TIMEOUT_SECONDS = 2
    return settings


def endpoint_at(url: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(platform=PlatformFactory(), url=url, event_types=["notification.created"])
    endpoint.secret_set(secret_generate())
    endpoint.save()
    return endpoint


def handed_over(endpoint: WebhookEndpoint, count: int) -> list[str]:
    """Messages as a writer leaves them for the task it queues: pending, under the writer's lease."""
    now = timezone.now()
    until = now + delivery.lease()
    rows = WebhookMessage.objects.bulk_create(
        WebhookMessage(
            platform_id=endpoint.platform_id,
            endpoint=endpoint,
            event_type="notification.created",
            payload={"notification_id": str(uuid.uuid4()), "n": n},
            next_attempt_at=until,
            claimed_until=until,
            created_at=now,
        )
        for n in range(count)
    )
    return [str(row.pk) for row in rows]


def in_threads(*calls) -> list:
    """Run the calls at once, each in a thread with its own database connection, as two workers would."""
    results: list = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i, call):
        try:
            start.wait()
            results[i] = call()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.skipif(connection.vendor != "postgresql", reason="two claiming workers need PostgreSQL's row locks")
@pytest.mark.django_db(transaction=True)
def test_two_tasks_with_the_same_messages_never_send_one_twice(loopback_allowed):
    with WebhookReceiver(delay=0.01) as receiver:
        endpoint = endpoint_at(receiver.url + "/hooks")
        receiver.secret = endpoint.secret
        ids = handed_over(endpoint, 40)
        # A duplicate of the task (or a replay of the same chunk) runs beside the first.
        delivered = in_threads(lambda: delivery.messages_deliver(ids=ids), lambda: delivery.messages_deliver(ids=ids))
    assert sum(delivered) == 40
    posted = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert set(posted.values()) == {1} and len(posted) == 40
    assert receiver.refused_signatures == 0
    assert set(WebhookMessage.objects.values_list("status", "attempts")) == {(MessageStatus.DELIVERED, 1)}
    assert WebhookAttempt.objects.count() == 40


@pytest.mark.django_db(transaction=True)
def test_a_held_message_is_skipped_until_its_lease_runs_out(loopback_allowed):
    with WebhookReceiver() as receiver:
        endpoint = endpoint_at(receiver.url + "/hooks")
        receiver.secret = endpoint.secret
        ids = handed_over(endpoint, 5)
        # A worker claims them and is killed before it records anything.
        lost = uuid.uuid4()
        assert len(delivery.messages_claim(ids=ids, token=lost)) == 5
        assert delivery.messages_deliver(ids=ids) == 0
        assert receiver.requests == []
        # Its lease runs out: the next task (the sweep's) takes them and sends them.
        later = timezone.now() + delivery.lease() + timedelta(seconds=1)
        again = uuid.uuid4()
        assert {str(m.pk) for m in delivery.messages_claim(ids=ids, token=again, now=later)} == set(ids)
        assert delivery.messages_claim(ids=ids, token=uuid.uuid4(), now=later) == []
        lapsed = timezone.now() - timedelta(seconds=1)
        WebhookMessage.objects.update(claimed_until=lapsed, next_attempt_at=lapsed)
        assert delivery.messages_deliver(ids=ids) == 5
        assert len(receiver.accepted) == 5
    assert not WebhookMessage.objects.exclude(status=MessageStatus.DELIVERED).exists()
    assert not WebhookMessage.objects.exclude(claim_token=None).exists()


@pytest.mark.django_db(transaction=True)
def test_a_lapsed_lease_is_claimed_again_by_the_sweep(loopback_allowed):
    from notifications import scheduler

    with WebhookReceiver() as receiver:
        endpoint = endpoint_at(receiver.url + "/hooks")
        receiver.secret = endpoint.secret
        ids = handed_over(endpoint, 3)
        delivery.messages_claim(ids=ids, token=uuid.uuid4())  # a worker that died holding them
        assert scheduler.sweep().get("webhooks", 0) == 0
        scheduler.sweep(now=timezone.now() + delivery.lease() + timedelta(seconds=1))
        assert set(receiver.accepted) == {f"msg_{uuid.UUID(pk).hex}" for pk in ids}


@pytest.mark.django_db(transaction=True)
def test_every_attempt_of_a_batch_is_logged_with_its_answer(loopback_allowed, django_assert_max_num_queries):
    with WebhookReceiver(fail_first=7) as receiver:
        endpoint = endpoint_at(receiver.url + "/hooks")
        receiver.secret = endpoint.secret
        ids = handed_over(endpoint, 30)
        # The claim (SELECT ... FOR UPDATE, UPDATE, read messages, read endpoints), then per group (the
        # first of one message per connection, then the other 26) one INSERT of attempts and one
        # UPDATE of messages; each transaction's BEGIN and COMMIT counted; the endpoint's failing
        # streak started (the first group answered 500 only) and ended (the second had 200s).
        # (SQLite, one writer at a time, records message by message.)
        bound = 16 if connection.vendor == "postgresql" else 200
        with django_assert_max_num_queries(bound):
            assert delivery.messages_deliver(ids=ids) == 23
    attempts = {a.message_id: a for a in WebhookAttempt.objects.all()}
    assert len(attempts) == 30
    assert Counter(a.status_code for a in attempts.values()) == {200: 23, 500: 7}
    now = timezone.now()
    for message in WebhookMessage.objects.all():
        attempt = attempts[message.pk]
        assert message.attempts == 1 and message.last_status_code == attempt.status_code
        assert message.claimed_until is None and message.claim_token is None
        if attempt.status_code == 200:
            assert message.status == MessageStatus.DELIVERED and message.delivered_at == attempt.created_at
            assert message.next_attempt_at is None and message.last_error == ""
        else:
            assert message.status == MessageStatus.PENDING and message.last_error == "HTTP 500"
            # The first retry: a minute (give or take the jitter) after the attempt.
            assert now + timedelta(seconds=40) < message.next_attempt_at < now + timedelta(seconds=80)
    # Some answers were 2xx: the endpoint is not failing.
    assert WebhookEndpoint.objects.get().failing_since is None


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_that_never_answers_costs_one_attempt_per_connection(loopback_allowed):
    loopback_allowed.WEBHOOK_DELIVERY_CONNECTIONS = 2
    endpoint = endpoint_at(f"http://127.0.0.1:{closed_port()}/hooks")
    ids = handed_over(endpoint, 10)
    assert delivery.messages_deliver(ids=ids) == 0
    attempted = WebhookMessage.objects.filter(attempts=1)
    assert attempted.count() == 2 == WebhookAttempt.objects.filter(status_code=None).count()
    retry = min(attempted.values_list("next_attempt_at", flat=True))
    # The rest wait for the same retry without an attempt spent, claimable again then.
    rest = WebhookMessage.objects.filter(attempts=0)
    assert rest.count() == 8
    assert set(rest.values_list("next_attempt_at", "claimed_until", "claim_token")) == {(retry, None, None)}
    assert WebhookEndpoint.objects.get().failing_since is not None


@pytest.mark.django_db(transaction=True)
def test_a_replay_leaves_a_message_being_sent_to_its_task(loopback_allowed):
    with WebhookReceiver() as receiver:
        endpoint = endpoint_at(receiver.url + "/hooks")
        receiver.secret = endpoint.secret
        sending, idle = handed_over(endpoint, 2)
        delivery.messages_claim(ids=[sending], token=uuid.uuid4())
        WebhookMessage.objects.filter(pk=idle).update(status=MessageStatus.FAILED, claimed_until=None)
        assert delivery.messages_replay_failed(endpoint=endpoint) == 1
        delivery.message_replay(message=WebhookMessage.objects.get(pk=sending))
        assert set(receiver.accepted) == {f"msg_{uuid.UUID(idle).hex}"}

"""Many sends through the pipeline at once: shared inserts, claims and counts, each source on its own."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.backends import locmem
from notifications.backends.base import BaseBackend, Result
from notifications.models import DeliveryStatus, Notification
from notifications.pipeline import Message, Recipient, Send, notification_send_many, send_counts, sql
from notifications.pipeline.parts import Outcome
from notifications.tests.fakes import backend_settings

pytestmark = pytest.mark.django_db


def _sends(platform, count, *, per=2, text="Class at 9"):
    return [
        Send(
            platform=platform,
            source=f"scheduled:many-{i}",
            channels=["sms"],
            recipients=[Recipient(address=f"+2519110{i:03d}{j:02d}") for j in range(per)],
            message=Message(body=f"{text} ({i})"),
        )
        for i in range(count)
    ]


@pytest.fixture
def calls(monkeypatch):
    """How often the bulk row helpers run (they call through: a count, not a stand-in)."""
    counted = {"insert": 0, "record": 0}
    for name in counted:
        real = getattr(sql, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            counted[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(sql, name, spy)
    return counted


def test_each_source_gets_its_own_rows_and_counts(platform, make_user):
    jane = make_user("jane", email="jane@example.com")
    sends = [
        *_sends(platform, 3),
        Send(
            platform=platform,
            source="bulk:mixed",
            channels=["email", "in_app"],
            recipients=[Recipient(user_id=jane.pk)],
            message=Message(title="Welcome", body="Hello Jane"),
        ),
    ]
    results = notification_send_many(sends=sends)

    assert [(r.sent, r.failed, r.pending, r.total_recipients) for r in results.values()] == [
        (2, 0, 0, 2),
        (2, 0, 0, 2),
        (2, 0, 0, 2),
        (2, 0, 0, 1),  # two channels, one recipient
    ]
    assert results["bulk:mixed"].per_channel == {
        "email": {"sent": 1, "failed": 0, "pending": 0, "suppressed": 0},
        "in_app": {"sent": 1, "failed": 0, "pending": 0, "suppressed": 0},
    }
    bodies = sorted(m["body"] for m in locmem.outbox["sms"])
    assert bodies == sorted(f"Class at 9 ({i})" for i in range(3) for _ in range(2))
    assert [m["address"] for m in locmem.outbox["email"]] == ["jane@example.com"]
    for i in range(3):
        assert send_counts(source=f"scheduled:many-{i}").sent == 2


def test_small_sends_share_one_insert_and_a_rerun_sends_nothing_twice(platform, calls):
    notification_send_many(sends=_sends(platform, 20))
    assert calls["insert"] == 1
    assert len(locmem.outbox["sms"]) == 40

    # Run again, as a redelivered task would, with one more recipient on one send.
    again = _sends(platform, 20)
    again[5] = Send(
        platform=platform,
        source=again[5].source,
        channels=["sms"],
        recipients=[*again[5].recipients, Recipient(address="+251911099999")],
        message=again[5].message,
    )
    results = notification_send_many(sends=again)
    assert len(locmem.outbox["sms"]) == 41
    assert results[again[5].source].sent == 3
    assert Notification.objects.filter(source__startswith="scheduled:many-").count() == 41


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="other databases record results and check keys row by row"
)
def test_the_statements_of_a_batch_do_not_grow_with_its_sends(platform):
    def statements(count, offset):
        sends = [
            Send(
                platform=platform,
                source=f"scheduled:{offset}-{s.source}",
                channels=s.channels,
                recipients=s.recipients,
                message=s.message,
            )
            for s in _sends(platform, count)
        ]
        with CaptureQueriesContext(connection) as queries:
            notification_send_many(sends=sends)
        return len(queries.captured_queries)

    # A first send also reads what is cached per process for a while (webhook
    # subscriptions, whether the platform has a suppression list).
    statements(1, "warm")
    assert statements(40, "b") == statements(10, "a")


def test_a_large_send_is_written_in_chunks_of_its_own(platform, settings):
    settings.NOTIFY_WRITE_CHUNK = 5
    big = _sends(platform, 1, per=12)[0]
    small = _sends(platform, 3, per=2)[1:]
    results = notification_send_many(sends=[big, *small])
    assert results[big.source].sent == 12
    assert [results[s.source].sent for s in small] == [2, 2]


def test_a_source_that_stops_running_sends_nothing_more(platform, settings):
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, sms="notifications.tests.test_send_many.SmallBatchBackend"
    )
    sends = _sends(platform, 2, per=6)
    stopped = sends[1].source
    asked = []

    def running(sources):
        asked.append(list(sources))
        # The second send is cancelled once the first batch has gone out.
        return [s for s in sources if s != stopped] if len(asked) > 2 else sources

    results = notification_send_many(sends=sends, running=running)
    assert results[sends[0].source].sent == 6
    assert results[stopped].sent < 6 and results[stopped].pending > 0


class SmallBatchBackend(BaseBackend):
    batch_size = 2

    def send_batch(self, deliveries):
        return [Result.sent(f"small-{d.id}") for d in deliveries]


class OneByOneBackend(BaseBackend):
    """Checks, before each send, that every earlier result of its batch is already recorded."""

    batch_size = 100

    def send_one(self, delivery):
        earlier = Notification.objects.filter(source=delivery.source, id__lt=delivery.id)
        assert not earlier.filter(delivery_status=DeliveryStatus.PENDING).exists()
        return Result.sent(f"one-{delivery.id}")


@pytest.mark.parametrize(("backend", "records"), [("SmallBatchBackend", 5), ("OneByOneBackend", 10)])
def test_results_known_together_are_recorded_together(platform, settings, calls, backend, records):
    """A batch decided at once is recorded at once; results yielded one by one, each before the next call."""
    settings.NOTIFICATION_BACKENDS = backend_settings(
        settings.NOTIFICATION_BACKENDS, sms=f"notifications.tests.test_send_many.{backend}"
    )
    [result] = notification_send_many(sends=_sends(platform, 1, per=10)).values()
    assert result.sent == 10
    assert calls["record"] == records
    assert set(Notification.objects.values_list("delivery_status", flat=True)) == {DeliveryStatus.SENT}


def test_a_source_stopped_before_the_write_gets_no_rows(platform):
    sends = _sends(platform, 3)
    stopped = sends[1].source
    results = notification_send_many(sends=sends, running=lambda sources: [s for s in sources if s != stopped])
    assert not Notification.objects.filter(source=stopped).exists()
    assert results[stopped].total_recipients == 0
    assert [results[s.source].sent for s in (sends[0], sends[2])] == [2, 2]


def test_a_result_only_lands_on_a_row_that_is_still_pending(platform):
    """A dispatcher whose lease ran out, recording late, never turns another dispatcher's result back."""
    from django.utils import timezone

    from notifications.pipeline.write import deliveries_write

    deliveries_write(
        platform=platform,
        source="bulk:late",
        channels=["sms"],
        recipients=[Recipient(address="+251911000001"), Recipient(address="+251911000002")],
        message=Message(body="Hi"),
    )
    first, second = Notification.objects.filter(source="bulk:late").order_by("address")
    Notification.objects.filter(pk=first.pk).update(delivery_status=DeliveryStatus.SENT, provider_message_id="other")
    now = timezone.now()
    sql.record(
        [
            Outcome(first.pk, "failed", "late answer", 1, "", 0, 1, None, None),
            Outcome(second.pk, "sent", "", 1, "mine", 1, 0, now, None),
        ],
        now=now,
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.delivery_status, first.provider_message_id, first.error) == ("sent", "other", "")
    assert (second.delivery_status, second.provider_message_id, second.sent_at) == ("sent", "mine", now)

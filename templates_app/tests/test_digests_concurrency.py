"""A thousand events from eight threads: one bucket, one digest per channel, every item (PostgreSQL)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections

from notifications import lifecycle, scheduler
from notifications.backends import locmem
from notifications.models import DeliveryStatus, Notification
from notifications.pipeline import Recipient
from templates_app.automation.events import event_notify
from templates_app.digests import buckets
from templates_app.digests.rules import digest_plan
from templates_app.models import DigestBucket, DigestRule, DigestStatus

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the upsert and row locks need PostgreSQL"),
]
ENROLL = "ADMIN_NOTIF_COURSE_ENROLLMENT"
EVENTS, THREADS = 1000, 8


def _race(n, work):
    barrier = threading.Barrier(n)
    errors = []

    def run(i):
        try:
            barrier.wait()
            work(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_thousand_events_from_eight_threads_make_one_digest_per_channel(platform, admin):
    # A day-long window: the whole test falls inside one window whenever it runs.
    DigestRule.objects.create(
        platform=platform, notification_type=ENROLL, window_minutes=24 * 60, channels=["email", "in_app"]
    )
    sent = []

    def listener(sender, platform_id, payload, **kwargs):
        sent.append(payload)

    lifecycle.digest_sent.connect(listener)

    def post(thread):
        for i in range(thread, EVENTS, THREADS):
            result = event_notify(
                platform=platform,
                notification_type=ENROLL,
                recipients=[admin.username],
                context={"course_name": f"Course {i}", "student_name": f"Student {i}", "student_email": f"s{i}@x.org"},
                event_id=f"enroll-{i}",
            )
            assert result["digest"]["joined"] == 1

    try:
        _race(THREADS, post)
        bucket = DigestBucket.objects.get()
        assert bucket.count == EVENTS and len(bucket.items) == EVENTS
        assert {item["context"]["course_name"] for item in bucket.items} == {f"Course {i}" for i in range(EVENTS)}
        assert not Notification.objects.filter(user=admin).exists()  # nothing live: both channels are digested

        # Two sweeps at once after the window's end: one claims the bucket, the other finds nothing.
        claimed = []
        _race(2, lambda i: claimed.append(scheduler.sweep(now=bucket.window_end + timedelta(seconds=1))["digests"]))
        assert sorted(claimed) == [0, 1]
        rows = Notification.objects.filter(user=admin)
        assert sorted(rows.values_list("channel", flat=True)) == ["email", "in_app"]
        assert {r.source for r in rows} == {bucket.source}
        assert all(r.delivery_status == DeliveryStatus.SENT for r in rows)
        assert all(r.title == f"{EVENTS} new enrollments on Acme Learning" for r in rows)
        assert all(r.context["count"] == EVENTS for r in rows)
        assert len(locmem.outbox["email"]) == 1
        assert [p["count"] for p in sent] == [EVENTS]
        assert DigestBucket.objects.get().status == DigestStatus.SENT
    finally:
        lifecycle.digest_sent.disconnect(listener)


def test_events_racing_the_close_land_in_exactly_one_bucket(platform, admin):
    """Joins and the closing claim at once: every event is in one bucket, sent or still open, never lost."""
    DigestRule.objects.create(platform=platform, notification_type=ENROLL, window_minutes=24 * 60)
    plan = digest_plan(platform=platform, notification_type=ENROLL)
    first = buckets.digest_join(
        platform=platform,
        plan=plan,
        recipient=Recipient(user_id=admin.pk),
        recipient_timezone="",
        event_id="e0",
        context={},
    )
    end = first.window_end

    def work(i):
        if i == 0:
            # A bucket a join holds right now is skipped (SKIP LOCKED): the claimer tries again.
            while not buckets.digests_due_claim(now=end, limit=10, lease=timedelta(minutes=5)):
                pass
            return
        for n in range(1, 101):
            buckets.digest_join(
                platform=platform,
                plan=plan,
                recipient=Recipient(user_id=admin.pk),
                recipient_timezone="",
                event_id=f"e{i}-{n}",
                context={},
                now=end - timedelta(seconds=1),
            )

    _race(4, work)
    ids = [item["event_id"] for b in DigestBucket.objects.all() for item in b.items]
    assert len(ids) == len(set(ids)) == 1 + 3 * 100
    assert sum(DigestBucket.objects.values_list("count", flat=True)) == 301
    assert DigestBucket.objects.filter(status=DigestStatus.SENDING).count() == 1

"""The one delivery pipeline: idempotent rows, leases, retries, chunks, interruptions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from notifications import scheduler
from notifications.backends import locmem
from notifications.backends.base import BaseBackend, Result
from notifications.models import Channel, DeliveryStatus, Notification
from notifications.pipeline import (
    Message,
    Recipient,
    build,
    dispatch,
    due,
    notification_send,
    retry,
    send_counts,
    write,
)
from notifications.pipeline.retry import retry_delay

pytestmark = pytest.mark.django_db

MESSAGE = Message(title="Maintenance tonight", body="The app will be unavailable 11 PM-1 AM UTC.")


def _backends(settings, **by_channel):
    backends = {key: dict(value) for key, value in settings.NOTIFICATION_BACKENDS.items()}
    for channel, path in by_channel.items():
        backends[channel] = {"BACKEND": path, "OPTIONS": {}}
    settings.NOTIFICATION_BACKENDS = backends


class FlakyBackend(BaseBackend):
    """Sends like locmem, but raises after `budget` sends (a crash mid-batch)."""

    budget: int | None = None
    seen: list = []

    def send_one(self, delivery):
        if FlakyBackend.budget is not None:
            if FlakyBackend.budget <= 0:
                raise ConnectionResetError("connection reset by peer")
            FlakyBackend.budget -= 1
        FlakyBackend.seen.append(delivery.recipient_key)
        return Result.sent(f"flaky-{delivery.id}")


class ScriptedBackend(BaseBackend):
    """Answers each delivery with the next scripted result for its recipient."""

    script: dict[str, list[Result]] = {}
    calls: list = []

    def send_one(self, delivery):
        ScriptedBackend.calls.append(delivery.recipient_key)
        queue = ScriptedBackend.script.get(delivery.recipient_key) or [Result.sent("ok")]
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def members(make_user):
    return [make_user(f"learner{i}") for i in range(10)]


def _recipients(users):
    return [Recipient(user_id=u.pk) for u in users]


def test_one_row_per_recipient_and_channel_counted_from_rows(platform, members):
    result = notification_send(
        platform=platform,
        source="bulk:1",
        channels=[Channel.EMAIL, Channel.IN_APP],
        recipients=_recipients(members) + _recipients(members[:3]),  # duplicates collapse
        message=MESSAGE,
    )
    assert (result.total_recipients, result.sent, result.failed, result.pending) == (10, 20, 0, 0)
    assert result.source == "bulk:1"
    assert result.per_channel == {
        "email": {"sent": 10, "failed": 0, "pending": 0, "suppressed": 0},
        "in_app": {"sent": 10, "failed": 0, "pending": 0, "suppressed": 0},
    }
    assert len(locmem.outbox["email"]) == 10
    row = Notification.objects.get(source="bulk:1", channel="email", user=members[0])
    assert (row.address, row.attempts, row.delivery_status) == (members[0].email, 1, "sent")
    assert row.provider_message_id == f"locmem-{row.id}"
    assert row.next_attempt_at is None and row.claimed_until is None
    in_app = Notification.objects.get(source="bulk:1", channel="in_app", user=members[0])
    assert (in_app.delivery_status, in_app.attempts, in_app.status) == ("sent", 1, "UNREAD")
    assert in_app.sent_at is not None


def test_a_send_in_many_calls_may_skip_the_counts(platform, members):
    # The builder sends one audience chunk by chunk and reads each recipient's outcome itself.
    for chunk in (members[:5], members[5:]):
        result = notification_send(
            platform=platform,
            source="build:chunks",
            channels=[Channel.EMAIL],
            recipients=_recipients(chunk),
            message=MESSAGE,
            count=False,
        )
        assert (result.source, result.sent, result.total_recipients) == ("build:chunks", 0, 0)
    assert len(locmem.outbox["email"]) == 10
    assert send_counts(source="build:chunks").sent == 10


def test_running_a_source_again_never_resends(platform, members):
    for _ in range(3):
        result = notification_send(
            platform=platform,
            source="bulk:again",
            channels=[Channel.EMAIL, Channel.IN_APP],
            recipients=_recipients(members),
            message=MESSAGE,
        )
    assert (result.total_recipients, result.sent) == (10, 20)
    assert len(locmem.outbox["email"]) == 10
    assert Notification.objects.filter(source="bulk:again").count() == 20


def test_rerun_with_a_larger_audience_sends_only_to_the_new_recipients(platform, members):
    notification_send(
        platform=platform, source="bulk:grow", channels=["email"], recipients=_recipients(members[:4]), message=MESSAGE
    )
    result = notification_send(
        platform=platform, source="bulk:grow", channels=["email"], recipients=_recipients(members), message=MESSAGE
    )
    assert result.sent == 10
    keys = [m["recipient_key"] for m in locmem.outbox["email"]]
    assert sorted(keys) == sorted(f"user:{u.pk}" for u in members)


def test_recipients_without_an_address_fail_with_the_reason(platform, make_user):
    nophone = make_user("nophone", phone_number="")
    result = notification_send(
        platform=platform,
        source="bulk:sms",
        channels=["sms"],
        recipients=[Recipient(user_id=nophone.pk), Recipient(address="+251911000111")],
        message=MESSAGE,
    )
    assert (result.total_recipients, result.sent, result.failed) == (2, 1, 1)
    row = Notification.objects.get(source="bulk:sms", user=nophone)
    assert (row.delivery_status, row.error) == ("failed", "User has no phone number")
    assert [m["address"] for m in locmem.outbox["sms"]] == ["+251911000111"]


def test_render_per_recipient(platform, members):
    def render(recipient, channel, user):
        return Message(title=f"Hi {user.username}", body=f"via {channel}", context={"username": user.username})

    notification_send(
        platform=platform, source="bulk:render", channels=["email"], recipients=_recipients(members), render=render
    )
    row = Notification.objects.get(source="bulk:render", user=members[3])
    assert (row.title, row.body, row.context) == ("Hi learner3", "via email", {"username": "learner3"})


def test_interrupted_dispatch_run_again_sends_each_recipient_exactly_once(settings, platform, members):
    _backends(settings, email="notifications.tests.test_pipeline.FlakyBackend")
    FlakyBackend.seen, FlakyBackend.budget = [], 4
    first = notification_send(
        platform=platform, source="bulk:flaky", channels=["email"], recipients=_recipients(members), message=MESSAGE
    )
    assert (first.sent, first.pending) == (4, 6)
    crashed = Notification.objects.get(source="bulk:flaky", error__startswith="Backend error")
    # The delivery in flight counts an attempt and waits out a backoff; the rest
    # of the claim was released at once.
    assert crashed.attempts == 1 and crashed.next_attempt_at > timezone.now()
    assert Notification.objects.filter(source="bulk:flaky", claimed_until__isnull=False).count() == 0

    FlakyBackend.budget = None  # the connection is back
    second = notification_send(
        platform=platform, source="bulk:flaky", channels=["email"], recipients=_recipients(members), message=MESSAGE
    )
    assert (second.sent, second.pending) == (9, 1)  # the crashed one waits for its retry
    Notification.objects.filter(pk=crashed.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    scheduler.sweep()  # eager Celery: the due retry runs now
    assert send_counts(source="bulk:flaky").sent == 10
    assert sorted(FlakyBackend.seen) == sorted(f"user:{u.pk}" for u in members)
    assert Notification.objects.filter(source="bulk:flaky", delivery_status="sent").count() == 10


def test_retryable_failures_back_off_and_the_sweep_retries_them(settings, platform, members):
    _backends(settings, sms="notifications.tests.test_pipeline.ScriptedBackend")
    settings.NOTIFY_RETRY_BASE_SECONDS = 10
    target = f"user:{members[0].pk}"
    ScriptedBackend.calls = []
    ScriptedBackend.script = {
        target: [
            Result.failed("HTTP 503", retryable=True),
            Result.failed("HTTP 429", retryable=True, retry_after=120),
            Result.sent("at-last"),
        ]
    }
    before = timezone.now()
    result = notification_send(
        platform=platform, source="bulk:retry", channels=["sms"], recipients=_recipients(members[:2]), message=MESSAGE
    )
    assert (result.sent, result.pending, result.failed) == (1, 1, 0)
    row = Notification.objects.get(source="bulk:retry", recipient_key=target)
    assert (row.delivery_status, row.attempts, row.error) == ("pending", 1, "HTTP 503")
    assert 10 <= (row.next_attempt_at - before).total_seconds() <= 12  # 10 s, up to 10% jitter

    assert scheduler.sweep().get("deliveries", 0) == 0  # not due yet
    Notification.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    before = timezone.now()
    assert scheduler.sweep()["deliveries"] == 1
    row.refresh_from_db()
    # Second backoff would be 20 s; the provider's Retry-After asks for 120.
    assert (row.attempts, row.error) == (2, "HTTP 429")
    assert 120 <= (row.next_attempt_at - before).total_seconds() < 125

    Notification.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    scheduler.sweep()
    row.refresh_from_db()
    assert (row.delivery_status, row.attempts, row.error, row.provider_message_id) == ("sent", 3, "", "at-last")
    assert ScriptedBackend.calls.count(target) == 3


def test_retries_stop_after_max_attempts(settings, platform, members):
    _backends(settings, sms="notifications.tests.test_pipeline.ScriptedBackend")
    settings.NOTIFY_MAX_ATTEMPTS = 2
    target = f"user:{members[0].pk}"
    ScriptedBackend.calls, ScriptedBackend.script = [], {target: [Result.failed("HTTP 500", retryable=True)]}
    notification_send(
        platform=platform, source="bulk:max", channels=["sms"], recipients=_recipients(members[:1]), message=MESSAGE
    )
    Notification.objects.filter(source="bulk:max").update(next_attempt_at=timezone.now())
    scheduler.sweep()
    row = Notification.objects.get(source="bulk:max")
    assert (row.delivery_status, row.attempts, row.error, row.next_attempt_at) == ("failed", 2, "HTTP 500", None)
    assert scheduler.sweep().get("deliveries", 0) == 0


def test_retry_delay_is_exponential_capped_and_honours_retry_after(settings):
    settings.NOTIFY_RETRY_BASE_SECONDS, settings.NOTIFY_RETRY_CAP_SECONDS = 30, 600
    assert 30 <= retry_delay(1) <= 33
    assert 60 <= retry_delay(2) <= 66
    assert 240 <= retry_delay(4) <= 264
    assert retry_delay(10) == 600  # capped
    assert retry_delay(1, retry_after=5) <= 33  # backoff longer than Retry-After: backoff wins
    assert retry_delay(10, retry_after=1800) == 1800  # Retry-After above the cap is honoured
    assert retry_delay(1, retry_after=10**9) == retry.RETRY_AFTER_MAX_SECONDS


def test_a_held_lease_blocks_other_dispatchers_until_it_expires(platform, members):
    write.deliveries_write(
        platform=platform, source="bulk:lease", channels=["email"], recipients=_recipients(members), message=MESSAGE
    )
    # A dispatcher claims a batch, then dies without recording anything.
    claimed = dispatch._claim(channel="email", sources=["bulk:lease"], limit=4)
    assert len(claimed) == 4
    assert dispatch.deliveries_dispatch(source="bulk:lease", channel="email") == 6
    assert len(locmem.outbox["email"]) == 6
    assert dispatch.deliveries_dispatch(source="bulk:lease", channel="email") == 0  # still held

    Notification.objects.filter(pk__in=[r.pk for r in claimed]).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )
    assert dispatch.deliveries_dispatch(source="bulk:lease", channel="email") == 4
    assert len(locmem.outbox["email"]) == 10
    assert send_counts(source="bulk:lease").sent == 10


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_a_claim_walks_the_pending_index_in_id_order_without_reading_the_rest(platform, members):
    """The lock is planned as the index walk up to its limit, whatever plan the costs favour."""
    write.deliveries_write(
        platform=platform, source="bulk:walk", channels=["email"], recipients=_recipients(members), message=MESSAGE
    )
    plans = []

    def explain(execute, sql, params, many, context):
        if "FOR UPDATE SKIP LOCKED" in sql:
            with context["connection"].connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
                plans.append(cursor.fetchone()[0][0]["Plan"])
        return execute(sql, params, many, context)

    with connection.cursor() as cursor:
        # Costs under which reading all of the send's rows and sorting them looks
        # cheapest, as it did to the planner for a send just written.
        cursor.execute("SET LOCAL random_page_cost = 1000")
    after = min(Notification.objects.filter(source="bulk:walk").values_list("id", flat=True))
    with connection.execute_wrapper(explain):
        claimed = dispatch._claim(channel="email", sources=["bulk:walk"], limit=3, after=after)
    assert len(claimed) == 3 and all(row.pk > after for row in claimed)

    def nodes(plan):
        yield plan
        for child in plan.get("Plans", []):
            yield from nodes(child)

    [plan] = plans
    kinds = [(node["Node Type"], node.get("Index Name")) for node in nodes(plan)]
    assert ("Index Scan", "delivery_pending") in kinds, kinds
    assert not any(kind in ("Sort", "Bitmap Heap Scan", "Seq Scan") for kind, _ in kinds), kinds
    # The settings were the lock's only: the lease and later statements plan as usual.
    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_sort")
        assert cursor.fetchone()[0] == "on"


def test_the_sweep_picks_up_rows_whose_dispatcher_died(platform, members):
    write.deliveries_write(
        platform=platform, source="bulk:orphan", channels=["email"], recipients=_recipients(members), message=MESSAGE
    )
    assert scheduler.sweep().get("deliveries", 0) == 0  # the writer has a lease's grace
    Notification.objects.filter(source="bulk:orphan").update(next_attempt_at=timezone.now())
    assert scheduler.sweep()["deliveries"] == 1  # one task for the chunk of ten
    assert send_counts(source="bulk:orphan").sent == 10


def test_a_sweep_ticket_is_only_good_for_its_own_task(platform, members):
    write.deliveries_write(
        platform=platform, source="bulk:ticket", channels=["email"], recipients=_recipients(members), message=MESSAGE
    )
    Notification.objects.filter(source="bulk:ticket").update(next_attempt_at=timezone.now())
    [item] = due.deliveries_due_claim(now=timezone.now(), limit=100, lease=timedelta(minutes=5))
    assert len(item["ids"]) == 10
    # Anyone else finds the rows held ...
    assert dispatch.deliveries_dispatch(source="bulk:ticket", channel="email") == 0
    assert due.deliveries_due_claim(now=timezone.now(), limit=100, lease=timedelta(minutes=5)) == []
    # ... the task holding the ticket sends them, and a duplicate of that task finds nothing.
    due.deliveries_due_run(item_id=item)
    due.deliveries_due_run(item_id=item)
    assert len(locmem.outbox["email"]) == 10


def test_should_stop_stops_before_the_next_batch(settings, platform, members):
    _backends(settings, email="notifications.tests.test_pipeline.FlakyBackend")
    FlakyBackend.seen, FlakyBackend.budget = [], None
    FlakyBackend.batch_size = 3
    batches = []

    def should_stop():
        batches.append(len(FlakyBackend.seen))
        return len(FlakyBackend.seen) >= 3

    try:
        result = notification_send(
            platform=platform,
            source="bulk:stop",
            channels=["email"],
            recipients=_recipients(members),
            message=MESSAGE,
            should_stop=should_stop,
        )
    finally:
        FlakyBackend.batch_size = BaseBackend.batch_size
    assert (result.sent, result.pending) == (3, 7)
    assert len(FlakyBackend.seen) == 3


def test_large_sends_go_to_celery_in_ranges_after_commit(
    settings, platform, members, django_capture_on_commit_callbacks
):
    settings.NOTIFY_SYNC_LIMIT, settings.NOTIFY_DISPATCH_RANGE, settings.NOTIFY_DISPATCH_TASKS = 2, 3, 3
    from notifications import tasks

    calls = []
    original = tasks.dispatch_range.delay

    def spy(sources, channel, after, upto):
        calls.append((sources, channel, after, upto))
        return original(sources, channel, after, upto)

    tasks.dispatch_range.delay = spy
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            result = notification_send(
                platform=platform,
                source="bulk:async",
                channels=["email"],
                recipients=_recipients(members),
                message=MESSAGE,
                wait=False,
            )
            # Returned at once: nothing is sent until the rows are committed.
            assert (result.source, result.total_recipients, result.pending, result.sent) == ("bulk:async", 10, 10, 0)
            assert calls == []
        for callback in callbacks:
            callback()
    finally:
        tasks.dispatch_range.delay = original
    # Ten rows, ranges of at least three, at most three tasks: 4 + 4 + the rest, in id order.
    ids = [
        str(pk) for pk in Notification.objects.filter(source="bulk:async").order_by("id").values_list("id", flat=True)
    ]
    assert calls == [
        (["bulk:async"], "email", None, ids[3]),
        (["bulk:async"], "email", ids[3], ids[7]),
        (["bulk:async"], "email", ids[7], None),
    ]
    assert send_counts(source="bulk:async").sent == 10
    assert len(locmem.outbox["email"]) == 10


# Committed for real: a caller inside a transaction dispatches everything itself.
@pytest.mark.django_db(transaction=True)
def test_a_waiting_caller_sends_the_first_range_itself_and_queues_the_others(settings, platform, members):
    settings.NOTIFY_SYNC_LIMIT, settings.NOTIFY_DISPATCH_RANGE, settings.NOTIFY_DISPATCH_TASKS = 2, 3, 3
    from celery import current_app

    from notifications import tasks

    calls = []
    original, eager = tasks.dispatch_range.delay, current_app.conf.task_always_eager
    # Queued, never run: the caller's help sends their rows too.
    tasks.dispatch_range.delay = lambda *args: calls.append(args)
    current_app.conf.task_always_eager = False
    try:
        result = notification_send(
            platform=platform,
            source="bulk:helped",
            channels=["email"],
            recipients=_recipients(members),
            message=MESSAGE,
        )
    finally:
        tasks.dispatch_range.delay, current_app.conf.task_always_eager = original, eager
    ids = [
        str(pk) for pk in Notification.objects.filter(source="bulk:helped").order_by("id").values_list("id", flat=True)
    ]
    assert calls == [(["bulk:helped"], "email", ids[3], ids[7]), (["bulk:helped"], "email", ids[7], None)]
    assert (result.sent, result.pending) == (10, 0)
    assert len(locmem.outbox["email"]) == 10


# Committed for real, as a builder worker's chunks are.
@pytest.mark.django_db(transaction=True)
def test_a_sender_alongside_others_sends_what_it_claims_queues_nothing_and_leaves_held_rows(
    settings, platform, members
):
    settings.NOTIFY_SYNC_LIMIT, settings.NOTIFY_DISPATCH_RANGE, settings.NOTIFY_DISPATCH_TASKS = 2, 3, 3
    from celery import current_app

    from notifications import tasks
    from notifications.pipeline import notification_send_finish

    calls = []
    original, eager = tasks.dispatch_range.delay, current_app.conf.task_always_eager
    tasks.dispatch_range.delay = lambda *args: calls.append(args)  # queued, never run
    current_app.conf.task_always_eager = False
    try:
        # Another sender of the same source wrote four rows and holds the first two (a second builder worker).
        notification_send(
            platform=platform,
            source="build:side-by-side",
            channels=["email"],
            recipients=_recipients(members[:4]),
            message=MESSAGE,
            wait=False,
        )
        held = list(
            Notification.objects.filter(source="build:side-by-side").order_by("id").values_list("id", flat=True)[:2]
        )
        Notification.objects.filter(id__in=held).update(claimed_until=timezone.now() + timedelta(seconds=1))
        calls.clear()
        notification_send(
            platform=platform,
            source="build:side-by-side",
            channels=["email"],
            recipients=_recipients(members[4:]),
            message=MESSAGE,
            count=False,
            alongside=True,
        )
    finally:
        tasks.dispatch_range.delay, current_app.conf.task_always_eager = original, eager
    assert calls == []  # nothing queued: the caller's peers are the other dispatchers
    # Every row nobody held went out here, the other's unheld rows included; the held ones wait for their holder.
    assert send_counts(source="build:side-by-side").sent == 8
    assert set(
        Notification.objects.filter(source="build:side-by-side", delivery_status=DeliveryStatus.PENDING).values_list(
            "id", flat=True
        )
    ) == set(held)
    # The holder dies; the finishing step waits out its lease and sends them.
    notification_send_finish(source="build:side-by-side", channels=["email"])
    assert send_counts(source="build:side-by-side").sent == 10
    assert len(locmem.outbox["email"]) == 10


def test_a_range_task_hands_on_to_a_successor_when_its_time_is_up(settings, platform, members):
    settings.NOTIFY_DISPATCH_TASK_SECONDS = 0  # one batch per task
    from notifications import tasks

    locmem.LocmemBackend.batch_size = 3
    calls = []
    original = tasks.dispatch_range.delay
    tasks.dispatch_range.delay = lambda *args: calls.append(args)
    try:
        write.deliveries_write(
            platform=platform, source="bulk:slice", channels=["email"], recipients=_recipients(members), message=MESSAGE
        )
        assert tasks.dispatch_range(["bulk:slice"], "email") == 3
        while calls:
            assert tasks.dispatch_range(*calls.pop()) <= 3
    finally:
        tasks.dispatch_range.delay = original
        locmem.LocmemBackend.batch_size = BaseBackend.batch_size
    assert send_counts(source="bulk:slice").sent == 10
    assert len(locmem.outbox["email"]) == 10


def test_a_chunk_task_run_twice_sends_once(platform, members):
    from notifications.tasks import dispatch_chunk

    write.deliveries_write(
        platform=platform, source="bulk:dup", channels=["email"], recipients=_recipients(members), message=MESSAGE
    )
    ids = [str(pk) for pk in Notification.objects.filter(source="bulk:dup").values_list("id", flat=True)]
    assert dispatch_chunk("bulk:dup", "email", ids) == 10
    assert dispatch_chunk("bulk:dup", "email", ids) == 0
    assert len(locmem.outbox["email"]) == 10


def test_a_range_task_run_twice_sends_once(platform, members):
    from notifications.tasks import dispatch_range

    write.deliveries_write(
        platform=platform, source="bulk:dup", channels=["email"], recipients=_recipients(members), message=MESSAGE
    )
    assert dispatch_range(["bulk:dup"], "email") == 10
    assert dispatch_range(["bulk:dup"], "email") == 0
    assert len(locmem.outbox["email"]) == 10


def test_cancel_fails_what_no_dispatcher_holds(platform, members):
    write.deliveries_write(
        platform=platform, source="bulk:cancel", channels=["email"], recipients=_recipients(members), message=MESSAGE
    )
    held = dispatch._claim(channel="email", sources=["bulk:cancel"], limit=2)
    assert dispatch.deliveries_cancel(source="bulk:cancel") == 8
    counts = send_counts(source="bulk:cancel")
    assert (counts.failed, counts.pending) == (8, 2)
    assert Notification.objects.filter(source="bulk:cancel", error="Cancelled before delivery").count() == 8
    assert dispatch.deliveries_dispatch(source="bulk:cancel", channel="email") == 0
    assert {r.pk for r in held} == set(
        Notification.objects.filter(source="bulk:cancel", delivery_status=DeliveryStatus.PENDING).values_list(
            "pk", flat=True
        )
    )


def test_push_rows_use_the_push_backend(platform, members):
    result = notification_send(
        platform=platform,
        source="bulk:push",
        channels=[Channel.PUSH],
        recipients=[*_recipients(members[:2]), Recipient(address="+251911000222")],
        message=MESSAGE,
    )
    assert (result.sent, result.failed) == (2, 0)
    assert len(locmem.outbox["push"]) == 2
    # A phone number serves SMS only: the front door gives it no push row (see test_eligibility.py).
    assert not Notification.objects.filter(source="bulk:push", user=None).exists()


def test_a_writer_that_raced_another_of_its_source_skips_the_rows_already_there(platform, members):
    notification_send(
        platform=platform, source="bulk:race", channels=["email"], recipients=_recipients(members[:5]), message=MESSAGE
    )
    # This writer saw no rows when it began (plain INSERT first), but another got in first.
    job = build.WriteJob(
        platform_id=platform.pk,
        source="bulk:race",
        channels=("email",),
        direct=frozenset(),
        message=MESSAGE,
        render=None,
        fresh_source=True,
    )
    write.write_chunk(build.build_rows(job, _recipients(members)), fresh_source=True, direct_channels=())
    assert Notification.objects.filter(source="bulk:race").count() == 10
    assert Notification.objects.filter(source="bulk:race", delivery_status="sent").count() == 5


def test_row_ids_are_version_7_uuids_in_time_and_sequence_order():
    import uuid

    from notifications.pipeline.sql import uuid7s

    ids = uuid7s(5000)
    parsed = [uuid.UUID(value) for value in ids]
    # Canonical strings: a plain INSERT returns these as the ids it wrote, unread from the database.
    assert [str(u) for u in parsed] == ids
    assert {u.version for u in parsed} == {7}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    assert ids[:4096] == sorted(ids[:4096])  # the 12-bit sequence orders one millisecond's ids
    assert len(set(ids)) == len(ids)
    later = uuid7s(1)[0]
    assert later[:13] >= ids[0][:13]  # the millisecond prefix never goes back


def test_renderers_get_real_accounts_with_their_fields_loaded_and_the_rest_on_first_use(
    make_user, django_assert_num_queries
):
    from notifications.pipeline.build import RENDERED_USER_FIELDS
    from notifications.pipeline.sql import accounts

    alice = make_user("alice", email="alice@example.com", phone_number="+251911000001", timezone="Africa/Addis_Ababa")
    bob = make_user("bob")
    users = accounts([alice.pk, bob.pk, 10**9], fields=RENDERED_USER_FIELDS)
    assert set(users) == {alice.pk, bob.pk}  # an id nobody has is left out
    found = users[alice.pk]
    assert (found.username, found.email, found.phone_number, found.timezone) == (
        "alice",
        "alice@example.com",
        "+251911000001",
        "Africa/Addis_Ababa",
    )
    assert found == alice and isinstance(found, type(alice)) and not found._state.adding
    assert found.get_deferred_fields() >= {"password", "date_joined"}
    with django_assert_num_queries(1):
        assert found.date_joined == alice.date_joined  # a field not loaded is read when first used
    found.first_name = "Alice"
    found.save(update_fields=["first_name"])
    alice.refresh_from_db()
    assert alice.first_name == "Alice"

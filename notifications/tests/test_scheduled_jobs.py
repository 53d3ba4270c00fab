"""Running scheduled jobs: claim, dispatch, finish, cancel mid-run, retries with backoff."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import scheduler
from notifications.backends import locmem
from notifications.backends.base import Result
from notifications.bulk_scheduled import SCHEDULED_SOURCE, job_runs, selectors
from notifications.bulk_scheduled.jobs import scheduled_cancel
from notifications.models import Notification, ScheduledNotification

pytestmark = pytest.mark.django_db


@pytest.fixture
def students(make_user):
    return [make_user(f"student{i:03d}", role="STUDENT") for i in range(5)]


def make_job(platform, *, channel="sms", due=None, **fields):
    due = due or timezone.now() - timedelta(seconds=1)
    fields.setdefault("message", "Hello")
    fields.setdefault("target_role", "STUDENT")
    return ScheduledNotification.objects.create(
        platform=platform, channel=channel, scheduled_at=due, due_at=due, **fields
    )


def sweep_at(when=None):
    return scheduler.sweep(now=when or timezone.now())[SCHEDULED_SOURCE]


def use_backend(settings, channel: str, dotted: str):
    settings.NOTIFICATION_BACKENDS = {
        **settings.NOTIFICATION_BACKENDS,
        channel: {"BACKEND": dotted, "OPTIONS": {}},
    }


def test_due_jobs_run_and_future_ones_wait(platform, students):
    due = make_job(platform)
    later = make_job(platform, due=timezone.now() + timedelta(minutes=5))
    assert sweep_at() == 1
    due.refresh_from_db()
    later.refresh_from_db()
    assert due.status == "sent" and later.status == "pending"
    assert (due.total_recipients, due.sent_count, due.failed_count) == (5, 5, 0)
    assert due.processing_started_at is not None and due.sent_at is not None and due.claimed_until is None
    assert len(locmem.outbox["sms"]) == 5


def test_recipients_are_resolved_at_dispatch_time(platform, students, make_user):
    job = make_job(platform)
    make_user("late-joiner", role="STUDENT")
    sweep_at()
    job.refresh_from_db()
    assert job.sent_count == 6


def test_all_failed_sets_failed_and_last_error(platform, students):
    for s in students:
        locmem.fail_for[s.phone_number] = "Number barred"
    job = make_job(platform)
    sweep_at()
    job.refresh_from_db()
    assert job.status == "failed" and job.sent_at is None
    assert job.last_error == "All 5 deliveries failed: Number barred"
    assert job.failed_count == 5


def test_some_failed_is_still_sent(platform, students):
    locmem.fail_for[students[0].phone_number] = "Number barred"
    job = make_job(platform)
    sweep_at()
    job.refresh_from_db()
    assert job.status == "sent" and (job.sent_count, job.failed_count) == (4, 1)


def test_nobody_to_reach_at_dispatch_time_fails(platform, students):
    job = make_job(platform, target_role="SUPPORT")
    sweep_at()
    job.refresh_from_db()
    assert job.status == "failed" and job.last_error == "No target users found"


def test_job_of_another_platform_reaches_only_its_members(platform, students):
    from notifications.tests.factories import PlatformFactory, make_member

    other = PlatformFactory(key="other-school")
    theirs = make_member(platform=other, username="theirs", role="STUDENT")
    job = make_job(other)
    sweep_at()
    assert [m["address"] for m in locmem.outbox["sms"]] == [theirs.phone_number]
    job.refresh_from_db()
    assert job.sent_count == 1


def test_a_cancelled_job_is_never_claimed(platform, students):
    job = make_job(platform)
    scheduled_cancel(job=job)
    assert sweep_at() == 0
    assert locmem.outbox["sms"] == []


class CancelsDuringFirstBatch(locmem.LocmemBackend):
    """Cancels the job through the service while its first batch is going out."""

    batch_size = 2

    def send_one(self, delivery):
        job_id = int(delivery.source.split(":")[1])
        if ScheduledNotification.objects.filter(pk=job_id, status="processing").exists():
            scheduled_cancel(job=ScheduledNotification.objects.get(pk=job_id))
        return super().send_one(delivery)


def test_cancel_while_processing_stops_before_the_next_batch(platform, students, settings):
    use_backend(settings, "sms", "notifications.tests.test_scheduled_jobs.CancelsDuringFirstBatch")
    job = make_job(platform)
    sweep_at()
    job.refresh_from_db()
    assert job.status == "cancelled" and job.cancelled_at is not None
    # The batch in flight finished; no later batch started.
    assert len(locmem.outbox["sms"]) == 2
    assert Notification.objects.filter(source=job.source, delivery_status="sent").count() == 2


class Flaky(locmem.LocmemBackend):
    """Raises like a provider outage that the backend did not turn into results."""

    failures_left = 0

    def send_one(self, delivery):
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            raise ConnectionError("provider unreachable")
        return super().send_one(delivery)


def _expire_delivery_leases(job):
    # What waiting out the pipeline's lease and retry backoff on the crashed batch would do.
    past = timezone.now() - timedelta(seconds=1)
    Notification.objects.filter(source=job.source, claimed_until__isnull=False).update(claimed_until=past)
    Notification.objects.filter(source=job.source, next_attempt_at__isnull=False).update(next_attempt_at=past)


def test_a_failed_run_is_retried_with_exponential_backoff(platform, students, settings):
    use_backend(settings, "sms", "notifications.tests.test_scheduled_jobs.Flaky")
    Flaky.failures_left = 2
    job = make_job(platform)

    before = timezone.now()
    sweep_at()
    job.refresh_from_db()
    assert job.status == "pending" and job.attempt_count == 1
    # The pipeline keeps a crashing backend's deliveries pending for a retry.
    assert job.last_error == "5 deliveries pending: Backend error: provider unreachable"
    assert job.due_at > before

    _expire_delivery_leases(job)
    job.due_at = timezone.now()
    job.save(update_fields=["due_at"])
    before = timezone.now()
    sweep_at()
    job.refresh_from_db()
    assert job.status == "pending" and job.attempt_count == 2
    assert job.last_error == "5 deliveries pending: Backend error: provider unreachable"

    _expire_delivery_leases(job)
    sweep_at(job.due_at + timedelta(seconds=1))
    job.refresh_from_db()
    assert job.status == "sent" and job.attempt_count == 3 and job.last_error == ""
    assert job.sent_count == 5
    # Nobody got two messages across the three runs.
    addresses = [m["address"] for m in locmem.outbox["sms"]]
    assert sorted(addresses) == sorted(s.phone_number for s in students)


def test_retry_delays_grow_and_are_capped(settings):
    settings.SCHEDULED_RETRY_BASE_SECONDS = 30
    settings.SCHEDULED_RETRY_MAX_SECONDS = 900
    assert [job_runs.retry_delay(n).total_seconds() for n in range(1, 8)] == [30, 60, 120, 240, 480, 900, 900]


def test_backoff_is_applied_when_nothing_is_leased(platform, students, settings, monkeypatch):
    """A run that fails before any delivery is claimed waits base * 2^(n-1)."""
    settings.SCHEDULED_RETRY_BASE_SECONDS = 30
    job = make_job(platform)

    def boom(**kwargs):
        raise TimeoutError("database timeout")

    monkeypatch.setattr(selectors, "recipients_resolve_many", boom)
    before = timezone.now()
    sweep_at()
    job.refresh_from_db()
    assert job.status == "pending" and job.attempt_count == 1 and job.last_error == "TimeoutError: database timeout"
    assert timedelta(seconds=29) < job.due_at - before < timedelta(seconds=32)
    sweep_at(job.due_at + timedelta(seconds=1))
    job.refresh_from_db()
    assert job.attempt_count == 2 and timedelta(seconds=59) < job.due_at - timezone.now() < timedelta(seconds=61)


def test_attempts_are_capped(platform, students, settings, monkeypatch):
    settings.SCHEDULED_MAX_ATTEMPTS = 3

    def boom(**kwargs):
        raise TimeoutError("database timeout")

    monkeypatch.setattr(selectors, "recipients_resolve_many", boom)
    job = make_job(platform)
    for _ in range(3):
        sweep_at(job.due_at + timedelta(seconds=1))
        job.refresh_from_db()
    assert job.status == "failed" and job.attempt_count == 3
    assert job.last_error == "Gave up after 3 attempts: TimeoutError: database timeout"
    assert sweep_at(timezone.now() + timedelta(days=1)) == 0


class TransientTwice(locmem.LocmemBackend):
    """A provider answering 503 twice per delivery before it takes it."""

    calls: dict = {}

    def send_one(self, delivery):
        n = TransientTwice.calls.get(delivery.id, 0)
        TransientTwice.calls[delivery.id] = n + 1
        if n < 2:
            return Result.failed("503 Service Unavailable", retryable=True)
        return super().send_one(delivery)


def test_transient_provider_failures_end_sent(platform, students, settings):
    use_backend(settings, "sms", "notifications.tests.test_scheduled_jobs.TransientTwice")
    TransientTwice.calls = {}
    job = make_job(platform)
    # However the pipeline spaces its retries, sweeping until the job settles sends each once.
    for _ in range(10):
        job.refresh_from_db()
        if job.status in ("sent", "failed"):
            break
        _expire_delivery_leases(job)
        sweep_at(max(job.due_at, timezone.now()) + timedelta(seconds=1))
    job.refresh_from_db()
    assert job.status == "sent" and job.sent_count == 5
    assert sorted(m["address"] for m in locmem.outbox["sms"]) == sorted(s.phone_number for s in students)
    assert {r.attempts for r in Notification.objects.filter(source=job.source)} == {3}


def test_expired_lease_is_claimed_again_and_resumes_without_resending(platform, students):
    """A worker that died mid-job: its lease runs out, the next sweep finishes the job."""
    job = make_job(platform)
    # The dead worker had claimed the job and sent to two recipients.
    assert job_runs.scheduled_claim(now=timezone.now(), limit=10, lease=timedelta(minutes=5)) == [job.pk]
    from notifications.pipeline import Message, Recipient, notification_send

    first_two = [Recipient(user_id=s.pk) for s in students[:2]]
    notification_send(
        platform=platform, source=job.source, channels=["sms"], recipients=first_two, message=Message(body="Hello")
    )
    assert sweep_at() == 0  # still leased
    ScheduledNotification.objects.filter(pk=job.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert sweep_at() == 1
    job.refresh_from_db()
    assert job.status == "sent" and job.sent_count == 5
    addresses = [m["address"] for m in locmem.outbox["sms"]]
    assert len(addresses) == len(set(addresses)) == 5


def test_claim_takes_due_jobs_in_order_and_respects_limit(platform, students):
    now = timezone.now()
    jobs = [make_job(platform, due=now - timedelta(seconds=10 - i)) for i in range(5)]
    claimed = job_runs.scheduled_claim(now=now, limit=3, lease=timedelta(minutes=5))
    assert claimed == [j.pk for j in jobs[:3]]
    assert set(ScheduledNotification.objects.filter(pk__in=claimed).values_list("status", flat=True)) == {"processing"}
    assert job_runs.scheduled_claim(now=now, limit=10, lease=timedelta(minutes=5)) == [j.pk for j in jobs[3:]]


def test_claims_that_expire_in_the_queue_do_not_use_up_attempts(platform, students, settings):
    """A backlog longer than the lease re-claims queued jobs; only runs count as attempts."""
    settings.SCHEDULED_MAX_ATTEMPTS = 2
    job = make_job(platform)
    lease = timedelta(minutes=5)
    for _ in range(4):
        assert job_runs.scheduled_claim(now=timezone.now(), limit=10, lease=lease) == [job.pk]
        ScheduledNotification.objects.filter(pk=job.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    job_runs.scheduled_run(job_id=job.pk)
    job_runs.scheduled_run(job_id=job.pk)  # the duplicate task of an earlier claim finds the job done
    job.refresh_from_db()
    assert job.status == "sent" and job.attempt_count == 1 and job.sent_count == 5
    assert len(locmem.outbox["sms"]) == 5


def test_the_sweep_queues_one_task_per_batch_of_claimed_jobs(platform, students, settings, monkeypatch):
    from notifications import tasks

    settings.DUE_WORK_BATCH_SIZE = 2
    batches = []
    monkeypatch.setattr(tasks.run_due_items, "delay", lambda source, ids: batches.append((source, ids)))
    jobs = [make_job(platform) for _ in range(5)]
    assert sweep_at() == 5
    assert [len(ids) for _, ids in batches] == [2, 2, 1]
    assert {source for source, _ in batches} == {SCHEDULED_SOURCE}
    assert sorted(i for _, ids in batches for i in ids) == sorted(j.pk for j in jobs)


def test_a_batch_runs_every_job_once_and_skips_one_cancelled_while_it_waited(platform, students, settings):
    settings.DUE_WORK_BATCH_SIZE = 10
    jobs = [make_job(platform, message=f"Hello {i}") for i in range(3)]
    claimed = job_runs.scheduled_claim(now=timezone.now(), limit=10, lease=timedelta(minutes=5))
    assert sorted(claimed) == sorted(j.pk for j in jobs)
    scheduled_cancel(job=jobs[1])
    job_runs.scheduled_run_many(job_ids=claimed)
    # Run again, as a redelivered task would: nothing goes out twice.
    job_runs.scheduled_run_many(job_ids=claimed)
    for job in jobs:
        job.refresh_from_db()
    assert [j.status for j in jobs] == ["sent", "cancelled", "sent"]
    assert [j.attempt_count for j in jobs] == [1, 0, 1]
    assert sorted(m["body"] for m in locmem.outbox["sms"]) == sorted(["Hello 0"] * 5 + ["Hello 2"] * 5)


def test_a_job_another_worker_ran_meanwhile_is_read_afresh(platform, students):
    job = make_job(platform)
    claimed = job_runs.scheduled_claim(now=timezone.now(), limit=10, lease=timedelta(minutes=5))
    # Another worker started the job after this batch was claimed (its lease ran out, say).
    ScheduledNotification.objects.filter(pk=job.pk).update(attempt_count=1)
    job_runs.scheduled_run_many(job_ids=claimed)
    job.refresh_from_db()
    assert (job.status, job.attempt_count, job.sent_count) == ("sent", 2, 5)


def test_the_sweep_task_has_a_queue_of_its_own():
    from config.celery import app

    assert app.amqp.router.route({}, "notifications.tasks.sweep_due_work")["queue"].name == "sweep"
    assert app.amqp.router.route({}, "notifications.tasks.run_due_items")["queue"].name == "celery"


def test_a_sweep_claims_again_while_its_claims_come_back_full(platform, students, settings, monkeypatch):
    from notifications import tasks

    settings.DUE_WORK_BATCH_SIZE = 4
    batches = []
    monkeypatch.setattr(tasks.run_due_items, "delay", lambda source, ids: batches.append(ids))
    jobs = [make_job(platform) for _ in range(7)]
    counts = scheduler.sweep(now=timezone.now(), limit=3)
    assert counts[SCHEDULED_SOURCE] == 7
    assert sorted(i for ids in batches for i in ids) == sorted(j.pk for j in jobs)


def test_the_next_due_job_is_found_within_the_window_only(platform, students):
    now = timezone.now()
    make_job(platform, due=now + timedelta(seconds=5))
    soon = make_job(platform, due=now + timedelta(milliseconds=400))
    make_job(platform, due=now - timedelta(seconds=1))  # already due: the sweep's claim takes it
    assert job_runs.scheduled_next_due(after=now, until=now + timedelta(seconds=1)) == soon.due_at
    assert job_runs.scheduled_next_due(after=now, until=now + timedelta(milliseconds=300)) is None


def test_a_sweep_queues_one_more_sweep_for_the_moment_the_next_job_falls_due(platform, students, monkeypatch):
    from celery import current_app

    from notifications import tasks

    queued = []
    monkeypatch.setattr(tasks.sweep_due_work, "apply_async", lambda **kwargs: queued.append(kwargs["eta"]))
    monkeypatch.setattr(tasks.run_due_items, "delay", lambda source, ids: None)
    now = timezone.now()
    soon = make_job(platform, due=now + timedelta(milliseconds=700))
    make_job(platform, due=now + timedelta(seconds=30))

    eager, current_app.conf.task_always_eager = current_app.conf.task_always_eager, False
    try:
        scheduler.sweep(now=now, follow_up=True)
        assert queued == [soon.due_at]
        # Another sweep that sees the same moment coming does not queue a second one.
        scheduler.sweep(now=now + timedelta(milliseconds=100), follow_up=True)
        assert queued == [soon.due_at]
    finally:
        current_app.conf.task_always_eager = eager
    scheduler.sweep(now=now, follow_up=True)  # eager mode: nothing waits for a moment
    # Beat's own sweeps pass follow_up; direct calls (and eager mode) never queue one.
    scheduler.sweep(now=now)
    assert len(queued) == 1


def test_a_batch_of_jobs_with_every_kind_of_targeting_reaches_whom_each_would_alone(platform, students, make_user):
    from notifications.tests.factories import PlatformFactory

    other_platform = PlatformFactory(key="globex-academy")
    teacher = make_user("teacher", role="INSTRUCTOR", phone_number="0911000111")
    stranger = make_user("stranger", role="STUDENT", plat=other_platform)
    jobs = [
        make_job(platform, message="by role"),
        make_job(platform, message="by ids", target_role="", target_user_ids=[students[0].pk, students[1].pk]),
        make_job(
            platform,
            message="ids and role",
            target_role="INSTRUCTOR",
            target_user_ids=[students[2].pk, stranger.pk],
        ),
        make_job(
            platform,
            message="direct",
            target_role="",
            target_raw={"phones": ["+251911000111", "+251922000222"]},
        ),
        make_job(other_platform, message="elsewhere"),
        make_job(platform, message="nobody", target_role="", target_user_ids=[stranger.pk]),
    ]
    claimed = job_runs.scheduled_claim(now=timezone.now(), limit=10, lease=timedelta(minutes=5))
    job_runs.scheduled_run_many(job_ids=claimed)

    reached = {}
    for n in Notification.objects.filter(channel="sms"):
        reached.setdefault(n.source, set()).add(n.recipient_key)
    users = lambda *us: {f"user:{u.pk}" for u in us}  # noqa: E731
    assert reached[jobs[0].source] == users(*students)
    assert reached[jobs[1].source] == users(students[0], students[1])
    assert reached[jobs[2].source] == users(students[2], teacher)
    # +251911000111 is the teacher's number, but this job names no users: both numbers as given.
    assert reached[jobs[3].source] == {"phone:+251911000111", "phone:+251922000222"}
    assert reached[jobs[4].source] == users(stranger)
    assert jobs[5].source not in reached
    for job in jobs:
        job.refresh_from_db()
    assert [j.status for j in jobs] == ["sent"] * 5 + ["failed"]
    assert jobs[5].last_error == "No target users found"
    assert [j.total_recipients for j in jobs] == [5, 2, 2, 2, 1, 0]

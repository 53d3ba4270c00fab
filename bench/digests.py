"""Benchmark: digests, 100,000 events over 10,000 users in one window.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_digests python -m bench digests \
        [--events 100000] [--users 10000] [--threads 4] [--api-events 2000]

Measures, on PostgreSQL, in one process (locmem backends: no provider network):
- `join`: every event joining its recipient's bucket through the one upsert
  (`digests.buckets.digest_join`), from `--threads` threads: events/s accepted;
- `event_api`: `--api-events` of them sent through the whole event service
  (`event_notify`: template, recipients, event record, join, stored result),
  from the same threads: events/s of the front door platforms call;
- `deliver`: from the window's end, the due-work sweep claiming every bucket
  under its lease and handing each digest to the pipeline (eager Celery: the
  batches run in this process one after another), until every digest row is
  sent: seconds, and digests/s.
Every bucket is checked to hold exactly its user's events, and every user to
get exactly one digest per channel. Results go to bench/results/digests-*.json.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from datetime import timedelta

from bench import common

TYPE = "ADMIN_NOTIF_COURSE_ENROLLMENT"
PLATFORM_KEY = "bench-digests"
CHANNELS = ["email", "in_app"]


def _prepare(n_users: int):
    from notifications.models import Membership, Platform, User
    from templates_app.models import DigestRule

    Platform.objects.filter(key=PLATFORM_KEY).delete()  # buckets, rows and events of an earlier run go with it
    platform = Platform.objects.create(key=PLATFORM_KEY, name="Bench Digests", site_url="https://bench.example.com")
    names = [f"digest-bench-{i}" for i in range(n_users)]
    User.objects.bulk_create(
        [User(username=n, email=f"{n}@example.com") for n in names], ignore_conflicts=True, batch_size=5000
    )
    users = list(User.objects.filter(username__in=names).order_by("pk"))
    Membership.objects.bulk_create(
        [Membership(user=u, platform=platform, role="ADMIN", is_platform_admin=True) for u in users],
        batch_size=5000,
    )
    # A day-long window: the whole run falls inside one window whenever it starts.
    DigestRule.objects.create(platform=platform, notification_type=TYPE, window_minutes=24 * 60, channels=CHANNELS)
    return platform, users


def _in_threads(threads: int, work) -> float:
    from django.db import connections

    errors = []
    barrier = threading.Barrier(threads + 1)

    def run(i):
        try:
            barrier.wait()
            work(i)
        except Exception as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def _context(i: int) -> dict:
    return {"course_name": f"Course {i % 50}", "student_name": f"Student {i}", "student_email": f"s{i}@example.org"}


def run(*, events: int, n_users: int, threads: int, api_events: int) -> dict:
    from celery import current_app
    from django.db.models import Count

    from notifications import scheduler
    from notifications.models import DeliveryStatus, Notification
    from notifications.pipeline import Recipient
    from templates_app.automation.events import event_notify
    from templates_app.digests.buckets import digest_join
    from templates_app.digests.rules import digest_plan
    from templates_app.models import DigestBucket, DigestStatus

    current_app.conf.task_always_eager = True  # the sweep's batches run here, one after another
    platform, users = _prepare(n_users)
    plan = digest_plan(platform=platform, notification_type=TYPE)
    joined = events - api_events

    def joins(thread):
        for i in range(thread, joined, threads):
            user = users[i % n_users]
            digest_join(
                platform=platform,
                plan=plan,
                recipient=Recipient(user_id=user.pk),
                recipient_timezone=user.timezone,
                event_id=f"join-{i}",
                context=_context(i),
                channels=CHANNELS,
            )

    def posts(thread):
        for i in range(joined + thread, events, threads):
            event_notify(
                platform=platform,
                notification_type=TYPE,
                recipients=[users[i % n_users].pk],
                context=_context(i),
                event_id=f"post-{i}",
            )

    print(f"joining {joined} events from {threads} threads ...", flush=True)
    join_s = _in_threads(threads, joins)
    print(f"posting {api_events} events through event_notify ...", flush=True)
    post_s = _in_threads(threads, posts) if api_events else 0.0

    buckets = DigestBucket.objects.filter(platform=platform)
    per_bucket = list(buckets.values_list("count", flat=True))
    assert len(per_bucket) == n_users and sum(per_bucket) == events, (len(per_bucket), sum(per_bucket))
    end = buckets.order_by("-window_end").values_list("window_end", flat=True).first()

    print(f"sweeping {len(per_bucket)} buckets from the window's end ...", flush=True)
    start = time.perf_counter()
    swept = 0
    while True:
        claimed = scheduler.sweep(now=end + timedelta(seconds=1))["digests"]
        swept += claimed
        if not claimed:
            break
    rows = Notification.objects.filter(platform=platform, source__startswith="digest:")
    while rows.filter(delivery_status=DeliveryStatus.PENDING).exists():
        time.sleep(0.05)
    deliver_s = time.perf_counter() - start

    assert not buckets.exclude(status=DigestStatus.SENT).exists()
    per_user = rows.values("user_id").annotate(n=Count("id")).values_list("n", flat=True)
    assert len(per_user) == n_users and set(per_user) == {len(CHANNELS)}, "one digest per user and channel"
    assert not rows.exclude(delivery_status=DeliveryStatus.SENT).exists()
    return {
        "events": events,
        "users": n_users,
        "threads": threads,
        "channels": CHANNELS,
        "join": {"events": joined, "seconds": round(join_s, 2), "events_per_s": round(joined / join_s, 1)},
        "event_api": {
            "events": api_events,
            "seconds": round(post_s, 2),
            "events_per_s": round(api_events / post_s, 1) if api_events else None,
        },
        "deliver": {
            "buckets": swept,
            "digest_rows": rows.count(),
            "seconds_from_window_end": round(deliver_s, 2),
            "digests_per_s": round(swept / deliver_s, 1),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench digests")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--api-events", type=int, default=2_000, help="of --events, sent through event_notify")
    args = parser.parse_args(argv)
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_digests")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    common.setup()
    result = run(events=args.events, n_users=args.users, threads=args.threads, api_events=args.api_events)
    path = common.write("digests", result)
    print(common.json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()

"""Dispatch lag of scheduled jobs: our sweep vs django-celery-beat clocked tasks.

    python -m bench.scheduled_dispatch [--jobs 1000] [--future 100000] [--concurrency 4] [--target phones|users]

Both modes run real processes (one Celery worker with --concurrency N, one
beat) against PostgreSQL (DATABASE_URL, default the local `bench_bulk`
database) and Redis (REDIS_URL, else the embedded server). With `--future`
jobs waiting days ahead in the table, `--jobs` jobs fall due in the same
second, each to one recipient: a phone number (`--target phones`, the default)
or a member of the platform named by id (`--target users`, resolved from the
database at dispatch time). The lag of a job is the time from its
`scheduled_at` to its first delivery (`sent_at` of its first delivery row).

1. sweep: beat runs `sweep_due_work` every second; workers claim with SKIP LOCKED.
2. clocked: the common alternative: one django-celery-beat one-off ClockedSchedule
   PeriodicTask per job (the future jobs too), running `bench.tasks.run_clocked_job`.

Writes bench/results/scheduled_dispatch-<time>.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_bulk")
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
os.environ.setdefault("LOG_LEVEL", "WARNING")
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Min  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_celery_beat.models import ClockedSchedule, PeriodicTask, PeriodicTasks  # noqa: E402
from tqdm import tqdm  # noqa: E402

from config.celery import app  # noqa: E402
from notifications.models import Notification, Platform, ScheduledNotification  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BATCH = 5000


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def reset() -> None:
    if connection.vendor != "postgresql":
        sys.exit("the benchmark needs PostgreSQL: set DATABASE_URL")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE notifications_notification, notifications_schedulednotification, "
            "django_celery_beat_periodictask, django_celery_beat_clockedschedule CASCADE"
        )
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username__startswith="bench-member-").delete()
    PeriodicTasks.update_changed()
    app.control.purge()


def phone(i: int) -> str:
    return f"+2519{10000000 + i:08d}"


def members_create(platform, count: int) -> list[int]:
    """`count` members of the platform with phone numbers (for `--target users`)."""
    from django.contrib.auth import get_user_model

    from notifications.models import Membership

    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"bench-member-{i}", phone_number=phone(30_000_000 + i)) for i in range(count)],
        batch_size=BATCH,
    )
    Membership.objects.bulk_create([Membership(user=u, platform=platform) for u in users], batch_size=BATCH)
    return [u.pk for u in users]


def jobs_create(
    platform,
    *,
    count: int,
    due: datetime,
    offset: int,
    spread: timedelta | None = None,
    desc: str,
    user_ids: list[int] | None = None,
):
    """`count` SMS jobs, each to one number (or one of `user_ids`); `spread` scatters them over the days after `due`."""
    ids = []
    for start in tqdm(range(0, count, BATCH), desc=desc, unit="batch", leave=False):
        rows = []
        for i in range(start, min(start + BATCH, count)):
            when = due + (spread * (i / count) if spread else timedelta())
            rows.append(
                ScheduledNotification(
                    platform=platform,
                    channel="sms",
                    message="Your class starts soon.",
                    scheduled_at=when,
                    due_at=when,
                    target_raw={} if user_ids else {"phones": [phone(offset + i)]},
                    target_user_ids=[user_ids[i]] if user_ids else [],
                )
            )
        ids += [j.pk for j in ScheduledNotification.objects.bulk_create(rows, batch_size=BATCH)]
    return ids


def clocked_create(job_ids: list[int], *, when_of) -> None:
    """One one-off clocked periodic task per job, as a django-celery-beat user would write it."""
    for start in tqdm(range(0, len(job_ids), BATCH), desc="clocked tasks", unit="batch", leave=False):
        chunk = job_ids[start : start + BATCH]
        clocks = ClockedSchedule.objects.bulk_create([ClockedSchedule(clocked_time=when_of(i)) for i in chunk])
        PeriodicTask.objects.bulk_create(
            [
                PeriodicTask(
                    name=f"scheduled-notification-{i}",
                    task="bench.tasks.run_clocked_job",
                    args=json.dumps([i]),
                    clocked=clock,
                    one_off=True,
                )
                for i, clock in zip(chunk, clocks, strict=True)
            ]
        )
    # bulk_create skips the save signal that tells beat to reload.
    PeriodicTasks.update_changed()


def start(mode: str, concurrency: int) -> list[subprocess.Popen]:
    env = {**os.environ, "BENCH_MODE": mode, "REDIS_URL": settings.REDIS_URL}
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    out = open(RESULTS / f"{mode}-processes.log", "w")
    procs = [
        subprocess.Popen(
            [
                *celery,
                "worker",
                "-Q",
                "celery,sweep",
                "-l",
                "WARNING",
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [*celery, "beat", "-l", "WARNING", "-S", "django_celery_beat.schedulers:DatabaseScheduler"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]
    deadline = time.monotonic() + 60
    while not app.control.ping(timeout=0.5):
        if time.monotonic() > deadline:
            stop(procs)
            sys.exit(f"the {mode} worker did not start; see {out.name}")
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def wait_and_measure(job_ids: list[int], due: datetime, *, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    total = len(job_ids)
    with tqdm(total=total, desc="dispatched", unit="job", leave=False) as bar:
        done = 0
        while time.monotonic() < deadline:
            now_done = ScheduledNotification.objects.filter(pk__in=job_ids, status__in=["sent", "failed"]).count()
            bar.update(now_done - done)
            done = now_done
            if done == total:
                break
            time.sleep(0.5)
    sources = [f"scheduled:{i}" for i in job_ids]
    firsts = (
        Notification.objects.filter(source__in=sources, delivery_status="sent")
        .values("source")
        .annotate(first=Min("sent_at"))
    )
    lags = [(row["first"] - due).total_seconds() for row in firsts]
    # When a job was taken: claimed by a sweep (ours) or started by a worker (clocked task).
    pickups = [
        (started - due).total_seconds()
        for started in ScheduledNotification.objects.filter(
            pk__in=job_ids, processing_started_at__isnull=False
        ).values_list("processing_started_at", flat=True)
    ]
    early = sum(1 for lag in lags if lag < 0)
    result = {
        "jobs": total,
        "dispatched": len(lags),
        "not_dispatched": total - len(lags),
        "sent_before_scheduled_at": early,
    }
    if lags:
        result.update(
            {
                "lag_p50_s": round(percentile(lags, 50), 3),
                "lag_p90_s": round(percentile(lags, 90), 3),
                "lag_p99_s": round(percentile(lags, 99), 3),
                "lag_max_s": round(max(lags), 3),
                "lag_mean_s": round(statistics.fmean(lags), 3),
                "first_delivery_s": round(min(lags), 3),
            }
        )
    if pickups:
        result.update(
            {"pickup_p50_s": round(percentile(pickups, 50), 3), "pickup_p99_s": round(percentile(pickups, 99), 3)}
        )
    return result


def due_soon(seconds: float) -> datetime:
    """A whole second at least `seconds` ahead: every job of the run falls due in that second."""
    return (timezone.now() + timedelta(seconds=seconds)).replace(microsecond=0)


def run_sweep(platform, args) -> dict:
    log("mode sweep: starting worker and beat")
    procs = start("sweep", args.concurrency)
    try:
        due = due_soon(6)
        ids = jobs_create(
            platform, count=args.jobs, due=due, offset=10_000_000, desc="due jobs", user_ids=args.user_ids
        )
        log(f"{args.jobs} jobs due at {due:%H:%M:%S}; waiting")
        return wait_and_measure(ids, due, timeout=args.timeout)
    finally:
        stop(procs)


def run_clocked(platform, future_ids: list[int], args) -> dict:
    future = {
        j.pk: j.scheduled_at for j in ScheduledNotification.objects.filter(pk__in=future_ids).only("scheduled_at")
    }
    clocked_create(future_ids, when_of=lambda i: future[i])
    log("mode clocked: starting worker and beat")
    procs = start("clocked", args.concurrency)
    try:
        # Let beat load its schedule once before the due jobs arrive, as in a running system.
        time.sleep(8)
        due = due_soon(6)
        ids = jobs_create(
            platform, count=args.jobs, due=due, offset=20_000_000, desc="due jobs", user_ids=args.user_ids
        )
        # Our sweep is not running in this mode: these rows only hold the jobs' content and counts.
        ScheduledNotification.objects.filter(pk__in=ids).update(due_at=due + timedelta(days=3650))
        clocked_create(ids, when_of=lambda i: due)
        log(f"{args.jobs} clocked tasks due at {due:%H:%M:%S}; waiting")
        return wait_and_measure(ids, due, timeout=args.timeout)
    finally:
        stop(procs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs due in the same second")
    parser.add_argument("--future", type=int, default=100_000, help="jobs waiting in the table, days ahead")
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker processes")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the due jobs")
    parser.add_argument("--skip-clocked", action="store_true", help="measure the sweep only")
    parser.add_argument("--target", choices=("phones", "users"), default="phones", help="each due job's one recipient")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)

    log(f"database {connection.settings_dict['NAME']}; resetting")
    reset()
    platform, _ = Platform.objects.get_or_create(key="bench", defaults={"name": "Bench"})
    start_future = timezone.now() + timedelta(days=1)
    future_ids = jobs_create(
        platform, count=args.future, due=start_future, offset=0, spread=timedelta(days=30), desc="future jobs"
    )
    log(f"{len(future_ids)} future jobs in the table")
    args.user_ids = members_create(platform, args.jobs) if args.target == "users" else None

    results = {"sweep": run_sweep(platform, args)}
    log(f"sweep: {results['sweep']}")
    if not args.skip_clocked:
        results["django_celery_beat_clocked"] = run_clocked(platform, future_ids, args)
        log(f"clocked: {results['django_celery_beat_clocked']}")

    report = {
        "benchmark": "scheduled_dispatch",
        "command": "python -m bench.scheduled_dispatch " + " ".join(sys.argv[1:]),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {
            "jobs_due_same_second": args.jobs,
            "future_jobs": args.future,
            "worker_concurrency": args.concurrency,
            "target": args.target,
            "sweep_interval_s": settings.CELERY_BEAT_SCHEDULE.get("sweep-due-work", {}).get("schedule"),
            "cpus": os.cpu_count(),
            "python": host.python_version(),
            "database": connection.vendor,
        },
        "goal": {"lag_p99_s": 1.5},
        "results": results,
    }
    path = RESULTS / f"scheduled_dispatch-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    log(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

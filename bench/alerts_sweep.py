"""Benchmark: the alerts sweep's claim and the alerts list, with and without their indexes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/notify python -m bench.alerts_sweep [--alerts 200000]

Creates a throw-away test database (`test_<name>`), fills it with alerts of
which only a few are due, and times, as the median of several runs:
- `claim`: one sweep's claim of the due alerts (SELECT ... FOR UPDATE SKIP LOCKED + lease);
- `idle_claim`: a sweep when nothing is due, which is what beat runs almost every second;
- `list_page`: a heavy user's first page of GET /alerts with its total and unread count.
The baseline `no_alert_indexes` runs the same queries after dropping the app's
indexes inside a transaction that is rolled back. Results go to
bench/results/alerts_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

INDEXES = ["alert_due", "alert_user_read_created", "alert_user_platform_created", "alert_archivable"]
RESULTS = Path(__file__).resolve().parent / "results" / "alerts_sweep.json"


def _load(n_alerts: int, n_users: int, due_now: int):
    from alerts.models import Alert
    from notifications.models import Membership, Platform, User

    platform = Platform.objects.create(key="bench", name="Bench")
    users = User.objects.bulk_create(
        [User(username=f"bench{i}", email=f"bench{i}@example.com") for i in range(n_users)]
    )
    Membership.objects.bulk_create([Membership(user=u, platform=platform) for u in users])
    heavy = users[0]
    now = timezone.now()
    rng = random.Random(7)
    rows = []
    for i in range(n_alerts):
        # A tenth of all alerts belong to one heavy user; the rest spread out.
        user = heavy if i % 10 == 0 else users[rng.randrange(1, n_users)]
        created = now - timedelta(minutes=rng.randrange(0, 60 * 24 * 90))
        kind = rng.random()
        if i < due_now:
            due, notified = now - timedelta(seconds=1), None  # due this second
        elif kind < 0.6:
            due, notified = created, created + timedelta(seconds=1)  # delivered long ago
        else:
            due, notified = now + timedelta(minutes=rng.randrange(1, 60 * 24 * 30)), None  # future reminders
        rows.append(
            Alert(
                platform=platform,
                user=user,
                title=f"Alert {i}",
                message="Item 'Laptop Dell XPS 15' is running low on stock",
                type=rng.choice(["info", "warning", "critical"]),
                is_read=rng.random() < 0.7,
                created_at=created,
                due_at=due,
                notify_at=due,
                notified_at=notified,
            )
        )
        if len(rows) == 10_000:
            Alert.objects.bulk_create(rows)
            rows = []
    Alert.objects.bulk_create(rows)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE alerts_alert")
    return platform, heavy


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        with transaction.atomic():
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000)
            transaction.set_rollback(True)  # every run claims the same due alerts
    return round(statistics.median(times), 3)


def _measure(platform, heavy, repeat: int) -> dict:
    from alerts import selectors, services

    def claim():
        ids = services.alerts_claim_due(now=timezone.now(), limit=500, lease=timedelta(minutes=5))
        assert ids, "nothing was due"

    def idle_claim():
        # The every-second case: nothing is due (an hour ago, nothing was).
        ids = services.alerts_claim_due(now=timezone.now() - timedelta(hours=1), limit=500, lease=timedelta(minutes=5))
        assert not ids

    def list_page():
        alerts = selectors.alert_list(platform=platform, user=heavy, is_read=False)
        list(alerts[:20])
        alerts.count()
        selectors.alert_unread_count(platform=platform, user=heavy)

    return {
        "claim_ms": _median_ms(claim, repeat),
        "idle_claim_ms": _median_ms(idle_claim, repeat),
        "list_page_ms": _median_ms(list_page, repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Alerts sweep and list benchmark")
    parser.add_argument("--alerts", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--due", type=int, default=200, help="alerts due at the moment of the sweep")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        started = time.perf_counter()
        platform, heavy = _load(args.alerts, args.users, args.due)
        load_s = round(time.perf_counter() - started, 1)
        with_indexes = _measure(platform, heavy, args.repeat)
        with transaction.atomic():
            with connection.cursor() as cursor:
                for name in INDEXES:
                    cursor.execute(f"DROP INDEX {name}")
                if connection.vendor == "postgresql":
                    cursor.execute("ANALYZE alerts_alert")
            baseline = _measure(platform, heavy, args.repeat)
            transaction.set_rollback(True)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    result = {
        "benchmark": "alerts_sweep",
        "database": connection.vendor,
        "alerts": args.alerts,
        "users": args.users,
        "due": args.due,
        "repeat": args.repeat,
        "load_seconds": load_s,
        "runs": {"indexed": with_indexes, "no_alert_indexes": baseline},
        "speedup": {
            key: round(baseline[key] / with_indexes[key], 1) if with_indexes[key] else None for key in with_indexes
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

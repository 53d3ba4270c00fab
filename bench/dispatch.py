"""Deliveries per second to a provider that accepts everything, sent by real Celery workers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_dispatch REDIS_URL=redis://127.0.0.1:6379/7 \\
        python -m bench dispatch [--recipients 100000] [--workers 1,2] [--prefill 0,2000000] [--rounds 1]

One `notification_send` of N emails (`wait=False`: the workers do all the
dispatching) to `bench.null_backend.NullBackend`, with a Celery prefork worker
of concurrency 1 or 2 started beforehand; timed from the call until no row of
the send is pending. `deliveries_per_s` is N over that time (the rows' write
included); `dispatch_per_s` counts from the call's return (rows written, tasks
queued) to the last row sent.

Two tables: a fresh one (`--prefill 0`: emptied before each run) and one
already holding earlier sends (`--prefill 2000000`: 2M sent rows, seeded with
SQL once in the database `<name>_full` and kept; each run's rows are deleted
and the table vacuumed afterwards, so every run meets the same table;
`--no-vacuum` leaves the dead rows of earlier runs to autovacuum instead).

Each figure comes with the 1-minute load average before and after it, the
CPU seconds of the worker processes (`worker_cpu_s`), of the PostgreSQL
backends serving the database (`postgres_cpu_s`: sampled at every poll, so a
backend's last 200 ms may be missed; the writer's own included) and the machine's busy
CPU seconds during the run (`machine_cpu_s`: PostgreSQL and everybody else
included), and the table afterwards (`table_after`: dead row versions left
for vacuum, index sizes). Writes bench/results/dispatch.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench import common

os.environ.setdefault("NOTIFY_EMAIL_BACKEND", "bench.null_backend.NullBackend")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_dispatch")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

ROOT = Path(__file__).resolve().parent.parent
PLATFORM_KEY = "bench-dispatch"
RUN_PREFIX = "bench-dispatch:run:"
TABLE = "notifications_notification"


def _database_url(prefill: int) -> str:
    """The fresh table's database, or `<name>_full` for a pre-filled one."""
    url = os.environ["DATABASE_URL"]
    if not prefill:
        return url
    base, _, name = url.rpartition("/")
    return f"{base}/{name}_full"


def _machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (every process, PostgreSQL included)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(pid: int) -> float:
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def _backends_cpu(cursor, seen: dict[int, float]) -> None:
    """Note the CPU seconds so far of each PostgreSQL backend serving this database (same machine)."""
    cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
    tick = os.sysconf("SC_CLK_TCK")
    for (pid,) in cursor.fetchall():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seen[pid] = (int(fields[11]) + int(fields[12])) / tick


# --- set-up (in the database given by DATABASE_URL) ---------------------------------------


def _ensure_users(count: int) -> list[int]:
    from django.db import connection

    from notifications.models import Membership, Platform, User

    platform, _ = Platform.objects.get_or_create(key=PLATFORM_KEY, defaults={"name": "Bench dispatch"})
    have = User.objects.filter(username__startswith="dispatch-").count()
    if have < count:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO notifications_user (password, is_superuser, username, first_name, last_name, is_staff,
                    is_active, date_joined, email, phone_number, timezone, is_service_account)
                SELECT '', false, 'dispatch-' || g, '', '', false, true, now(), 'dispatch-' || g || '@example.com',
                    '', 'UTC', false
                FROM generate_series(%s, %s) AS g
                """,
                [have + 1, count],
            )
    ids = list(
        User.objects.filter(username__startswith="dispatch-").order_by("id").values_list("id", flat=True)[:count]
    )
    if not Membership.objects.filter(platform=platform).exists():
        Membership.objects.bulk_create([Membership(user_id=i, platform=platform) for i in ids], batch_size=5000)
    return ids


def _prefill(rows: int, user_ids: list[int]) -> None:
    """Earlier sends' rows, all sent, with time-ordered ids older than any new row; once, then kept."""
    from django.db import connection

    from notifications.models import Platform

    prefix = "bench-dispatch:earlier:"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE source LIKE %s", [prefix + "%"])
        have = cursor.fetchone()[0]
        if have >= rows:
            return
        platform_id = Platform.objects.get(key=PLATFORM_KEY).pk
        first, users = min(user_ids), len(user_ids)
        # A month ago, in milliseconds: the ids' time part (UUIDv7), older than anything written now.
        cursor.execute("SELECT (extract(epoch FROM now() - interval '30 days') * 1000)::bigint")
        base_ms = cursor.fetchone()[0]
        step = 200_000
        for start in range(have, rows, step):
            end = min(start + step, rows) - 1
            print(f"pre-filling rows {start}..{end} of {rows}", flush=True)
            cursor.execute(
                f"""
                INSERT INTO {TABLE} (id, platform_id, user_id, recipient_key, address, channel, source,
                    notification_type, level, title, body, html, short_message, context, data, image_url, status,
                    delivery_status, error, rule, attempts, provider_message_id, units_sent, units_failed,
                    claimed_until, next_attempt_at, created_at, updated_at, sent_at, read_at, provider)
                SELECT
                    (lpad(to_hex(%(base)s + g / 50), 12, '0') || '7' || lpad(to_hex(g %% 4096), 3, '0') || '8'
                        || lpad(to_hex(g), 15, '0'))::uuid,
                    %(platform)s, %(first)s + g %% %(users)s, 'user:' || (%(first)s + g %% %(users)s),
                    'dispatch-' || (1 + g %% %(users)s) || '@example.com', 'email',
                    %(prefix)s || (g / %(users)s), 'custom', 'info', 'Earlier news', 'Something happened.', '', '',
                    '{{}}', '{{}}', '', 'UNREAD', 'sent', '', '', 1, '', 1, 0,
                    NULL, NULL, now() - interval '30 days', now() - interval '30 days', now() - interval '30 days',
                    NULL, 'null'
                FROM generate_series(%(start)s, %(end)s) AS g
                """,
                {
                    "base": base_ms,
                    "platform": platform_id,
                    "first": first,
                    "users": users,
                    "prefix": prefix,
                    "start": start,
                    "end": end,
                },
            )
        cursor.execute(f"VACUUM ANALYZE {TABLE}")


def _reset(prefill: int, *, vacuum: bool = True) -> None:
    """A fresh table empty; a pre-filled one back to its earlier rows, vacuumed unless asked not to."""
    from django.db import connection

    with connection.cursor() as cursor:
        if prefill:
            cursor.execute(f"DELETE FROM {TABLE} WHERE source LIKE %s", [RUN_PREFIX + "%"])
        else:
            cursor.execute(f"TRUNCATE {TABLE}, notifications_inboxcounter")
        cursor.execute(f"{'VACUUM ANALYZE' if vacuum else 'ANALYZE'} {TABLE}")


def _table_state() -> dict:
    """The delivery table after a send: dead row versions left for vacuum, and the indexes' sizes."""
    from django.db import connection

    time.sleep(1)  # the statistics collector's flush
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_live_tup, n_dead_tup, autovacuum_count FROM pg_stat_user_tables WHERE relname = %s", [TABLE]
        )
        live, dead, autovacuums = cursor.fetchone()
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
            "WHERE indrelid = %s::regclass ORDER BY 1",
            [TABLE],
        )
        indexes = {name: round(size / 2**20, 1) for name, size in cursor.fetchall()}
    return {"live_rows": live, "dead_rows": dead, "autovacuums_so_far": autovacuums, "index_mib": indexes}


# --- one measurement, in its own process -----------------------------------------------------------


def _start_worker(workers: int) -> subprocess.Popen:
    return common.celery_worker(concurrency=workers, name="bench-dispatch", queues="celery")


def phase_send(*, recipients: int, workers: int, prefill: int, vacuum: bool = True) -> dict:
    from django.db import connection

    from notifications.models import Notification, Platform
    from notifications.pipeline import Message, Recipient, notification_send

    user_ids = _ensure_users(recipients)
    if prefill:
        _prefill(prefill, user_ids)
    _reset(prefill, vacuum=vacuum)
    platform = Platform.objects.get(key=PLATFORM_KEY)
    source = f"{RUN_PREFIX}{uuid.uuid4()}"
    people = [Recipient(user_id=i) for i in user_ids]
    message = Message(title="Exam tomorrow", body="Your exam starts at 9:00.", notification_type="custom")
    worker = _start_worker(workers)
    try:
        time.sleep(1)  # the pool's processes up and idle
        worker_cpu = _tree_cpu_s(worker.pid)
        machine = _machine_busy_s()
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        notification_send(
            platform=platform,
            source=source,
            channels=["email"],
            recipients=people,
            message=message,
            wait=False,
            count=False,
        )
        written = time.perf_counter() - started
        deadline = time.time() + 600
        backends: dict[int, float] = {}
        with connection.cursor() as cursor:
            _backends_cpu(cursor, backends)
            before = dict(backends)
            while True:
                _backends_cpu(cursor, backends)
                # Is any row still pending? Stops at the first; a count would
                # read every pending row at each poll and compete with the workers.
                cursor.execute(
                    f"SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE source = %s AND channel = 'email' "
                    "AND delivery_status = 'pending')",
                    [source],
                )
                if not cursor.fetchone()[0]:
                    break
                if time.time() > deadline or worker.poll() is not None:
                    raise RuntimeError("the send did not finish")
                time.sleep(0.2)
        seconds = time.perf_counter() - started
        postgres_cpu = sum(cpu - before.get(pid, 0.0) for pid, cpu in backends.items())
        machine_cpu = _machine_busy_s() - machine
        worker_cpu = _tree_cpu_s(worker.pid) - worker_cpu
        load_after = os.getloadavg()[0]
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    sent = Notification.objects.filter(source=source, delivery_status="sent").count()
    assert sent == recipients, (sent, recipients)
    table = _table_state()
    return {
        "recipients": recipients,
        "workers": workers,
        "prefilled_rows": prefill,
        "sent": sent,
        "seconds": round(seconds, 3),
        "write_seconds": round(written, 3),
        "deliveries_per_s": round(recipients / seconds),
        "dispatch_per_s": round(recipients / (seconds - written)),
        "worker_cpu_s": round(worker_cpu, 2),
        "worker_cpu_ms_per_1k": round(worker_cpu * 1e6 / recipients, 1),
        "postgres_cpu_s": round(postgres_cpu, 2),
        "machine_cpu_s": round(machine_cpu, 2),
        "load_average_1m": [round(load_before, 2), round(load_after, 2)],
        "table_after": table,
    }


def run_phase(*, recipients: int, workers: int, prefill: int, vacuum: bool = True) -> dict:
    import json

    env = os.environ.copy()
    env["DATABASE_URL"] = _database_url(prefill)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "dispatch",
            "--phase",
            "--recipients",
            str(recipients),
            "--workers",
            str(workers),
            "--prefill",
            str(prefill),
            *([] if vacuum else ["--no-vacuum"]),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the send failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    import json

    parser = argparse.ArgumentParser(prog="python -m bench dispatch")
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2", help="Celery worker concurrencies (comma separated)")
    parser.add_argument(
        "--prefill", default="0,2000000", help="earlier sent rows in the table (comma separated; 0: a fresh table)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="every combination this many times")
    parser.add_argument(
        "--no-vacuum",
        action="store_true",
        help="leave the earlier runs' dead rows to autovacuum (the table is only analyzed between runs)",
    )
    parser.add_argument("--phase", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not os.environ.get("REDIS_URL"):
        sys.exit("Set REDIS_URL (and DATABASE_URL to a PostgreSQL database), see the docstring.")

    if args.phase:
        common.setup()
        result = phase_send(
            recipients=args.recipients, workers=int(args.workers), prefill=int(args.prefill), vacuum=not args.no_vacuum
        )
        print(json.dumps(result))
        return
    prefills = [int(p) for p in args.prefill.split(",") if p.strip()]
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    runs = []
    for round_ in range(1, args.rounds + 1):
        for prefill in prefills:
            for workers in worker_counts:
                print(f"round {round_}: {workers} worker(s), {prefill} earlier rows ...", flush=True)
                result = run_phase(
                    recipients=args.recipients, workers=workers, prefill=prefill, vacuum=not args.no_vacuum
                )
                result["round"] = round_
                print(json.dumps(result), flush=True)
                runs.append(result)
    common.write_result(
        "dispatch",
        {
            "settings": {
                "recipients": args.recipients,
                "workers": worker_counts,
                "prefill": prefills,
                "vacuum_between_runs": not args.no_vacuum,
            },
            "runs": runs,
        },
    )

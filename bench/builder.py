"""The notification builder with 100k recipients: preview and send, against naive baselines.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_builder REDIS_URL=redis://127.0.0.1:6379/7 \\
        python -m bench.builder [--recipients 100000] [--workers 1,2] [--chunk 1000] [--rounds 2] [--sends-only]

Seeds a platform with N active members once (kept between runs), then measures,
each in a fresh process so peak memory (VmHWM growth) belongs to one phase:

- preview: POST preview/ with one `platform` source, through the real view
  (auth, validation, INSERT ... SELECT into the build, fingerprint, first page);
  baseline `preview_python`: the same audience loaded into Python, de-duplicated
  in a set and bulk-inserted (what the builder avoids);
- send: POST send/ on a fresh build with channels email + in_app, sent by real
  Celery workers (`--workers`, each a prefork worker with that concurrency and
  that many tasks sharing the build), timed until the build is `completed`;
  baseline `send_one_call`: one `notification_send` call with the whole
  audience in a single process (the pipeline alone, no chunks, no mirroring).

Each round runs the sends and then their baseline (`--rounds` interleaves them,
A B A B) and reports `ratios`: the builder's time over the baseline's in that
round, with the load average around each phase (the machine may be shared).

Email goes to bench.null_backend (accepts everything), in-app through the real
in-app backend (rows plus a channels-redis group send each). Writes
bench/results/builder.json. Needs PostgreSQL for meaningful figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import celery_worker, setup_django, write_result

ROOT = Path(__file__).resolve().parent.parent
PLATFORM_KEY = "bench-builder"
ADMIN = "bench-admin"
TEMPLATE = {
    "message_title": "Maintenance on {{ site_name }}",
    "message_body": "Hi {{ username }}, we restart at 02:00.",
}


def _hwm_kib() -> int:
    """Peak resident set size of this process so far (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _env(chunk: int, workers: int = 1) -> dict:
    env = os.environ.copy()
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        NOTIFY_EMAIL_BACKEND="bench.null_backend.NullBackend",
        NOTIFY_IN_APP_BACKEND="notifications.backends.in_app.InAppBackend",
        BUILDER_SEND_CHUNK=str(chunk),
        BUILDER_SEND_WORKERS=str(workers),
        LOG_LEVEL="WARNING",
    )
    return env


# --- phases, each run in its own process ------------------------------------------------------


def _client():
    from rest_framework.test import APIClient

    from notifications.models import AuthToken, User

    _, raw = AuthToken.issue(user=User.objects.get(username=ADMIN), name="bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    return client


def _preview_body() -> dict:
    return {"template_data": TEMPLATE, "channels": [1, 3], "sources": [{"type": "platform", "data": PLATFORM_KEY}]}


def phase_preview() -> dict:
    client = _client()
    base = _hwm_kib()
    started = time.perf_counter()
    r = client.post(
        f"/api/notification/v1/orgs/{PLATFORM_KEY}/notification-builder/preview/", _preview_body(), format="json"
    )
    seconds = time.perf_counter() - started
    assert r.status_code == 200, r.content
    return {
        "seconds": round(seconds, 3),
        "count": r.json()["count"],
        "build_id": r.json()["build_id"],
        "peak_rss_growth_mib": round((_hwm_kib() - base) / 1024, 1),
    }


def phase_preview_python() -> dict:
    """Baseline: the audience through Python memory."""
    from django.db import transaction

    from builder.models import Build, BuildRecipient, BuildStatus
    from notifications.models import Platform, User
    from notifications.selectors import platform_members

    platform = Platform.objects.get(key=PLATFORM_KEY)
    base = _hwm_kib()
    started = time.perf_counter()
    with transaction.atomic():
        build = Build.objects.create(
            platform=platform,
            created_by=User.objects.get(username=ADMIN),
            status=BuildStatus.DRAFT,
            template_data=TEMPLATE,
            channels=["email", "in_app"],
        )
        seen: set[str] = set()
        rows = []
        for pk, username, email in platform_members(platform=platform).values_list("pk", "username", "email"):
            key = f"user:{pk}"
            if key not in seen:
                seen.add(key)
                rows.append(BuildRecipient(build=build, user_id=pk, recipient_key=key, username=username, email=email))
        BuildRecipient.objects.bulk_create(rows, batch_size=2000)
        build.recipient_count = len(rows)
        build.status = BuildStatus.PREVIEWED
        build.save()
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "count": len(rows),
        "peak_rss_growth_mib": round((_hwm_kib() - base) / 1024, 1),
    }


def phase_send(workers: int) -> dict:

    from builder.models import Build, BuildStatus

    client = _client()
    preview = client.post(
        f"/api/notification/v1/orgs/{PLATFORM_KEY}/notification-builder/preview/", _preview_body(), format="json"
    ).json()
    build_id = preview["build_id"]
    worker = celery_worker(concurrency=workers, name="bench")
    try:
        started = time.perf_counter()
        r = client.post(
            f"/api/notification/v1/orgs/{PLATFORM_KEY}/notification-builder/send/",
            {"build_id": build_id, "force": True},
            format="json",
        )
        answered = time.perf_counter() - started
        assert r.json()["message"] == "Notifications sent", r.json()
        samples = []
        while True:
            build = Build.objects.get(pk=build_id)
            samples.append((round(time.perf_counter() - started, 1), build.sent_count + build.failed_count))
            if build.status not in (BuildStatus.SENDING, BuildStatus.QUEUED):
                break
            time.sleep(0.5)
        seconds = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return {
        "workers": workers,
        "status": build.status,
        "recipients": build.recipient_count,
        "sent": build.sent_count,
        "failed": build.failed_count,
        "send_request_seconds": round(answered, 3),
        "seconds": round(seconds, 2),
        "recipients_per_s": round(build.recipient_count / seconds, 1),
        "progress_samples": samples[:: max(1, len(samples) // 20)],
    }


def phase_send_one_call() -> dict:
    """Baseline: the whole audience handed to the pipeline in one call, one process."""
    import uuid

    from builder.templating import CUSTOM_TYPE
    from notifications.models import Platform
    from notifications.pipeline import Message, Recipient, notification_send
    from notifications.selectors import platform_members

    platform = Platform.objects.get(key=PLATFORM_KEY)
    base = _hwm_kib()
    started = time.perf_counter()
    recipients = [Recipient(user_id=pk) for pk in platform_members(platform=platform).values_list("pk", flat=True)]
    result = notification_send(
        platform=platform,
        source=f"bench-baseline:{uuid.uuid4()}",
        channels=["email", "in_app"],
        recipients=recipients,
        message=Message(title="Maintenance", body="We restart at 02:00.", notification_type=CUSTOM_TYPE),
    )
    seconds = time.perf_counter() - started
    return {
        "recipients": len(recipients),
        "sent": result.sent,
        "failed": result.failed,
        "seconds": round(seconds, 2),
        "recipients_per_s": round(len(recipients) / seconds, 1),
        "peak_rss_growth_mib": round((_hwm_kib() - base) / 1024, 1),
    }


PHASES = {
    "preview": phase_preview,
    "preview_python": phase_preview_python,
    "send_one_call": phase_send_one_call,
}


def run_phase(name: str, *, chunk: int, workers: int = 1) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.builder", "--phase", name, "--workers", str(workers)],
        cwd=ROOT,
        env=_env(chunk, workers),
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- set-up -------------------------------------------------------------------------------


def ensure_database() -> None:
    """Create the benchmark's PostgreSQL database when it does not exist yet."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    with psycopg.connect(
        dbname="postgres", user=cfg["USER"], host=cfg["HOST"], port=cfg["PORT"] or 5432, autocommit=True
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


def seed(recipients: int) -> None:
    from django.core.management import call_command
    from django.db import connection
    from tqdm import tqdm

    from builder.models import Build
    from notifications.models import Membership, Notification, Platform, User

    call_command("migrate", verbosity=0)
    platform, _ = Platform.objects.get_or_create(key=PLATFORM_KEY, defaults={"name": "Bench builder"})
    admin, _ = User.objects.get_or_create(username=ADMIN, defaults={"email": "bench-admin@example.com"})
    Membership.objects.get_or_create(
        user=admin, platform=platform, defaults={"is_platform_admin": True, "role": "ADMIN"}
    )
    # A clean slate: earlier runs' builds and deliveries.
    Notification.objects.filter(platform=platform).delete()
    Build.objects.filter(platform=platform).delete()
    have = Membership.objects.filter(platform=platform).count() - 1
    if have < recipients:
        batch = 5000
        for start in tqdm(range(have, recipients, batch), desc="seeding members", unit_scale=batch):
            users = User.objects.bulk_create(
                User(username=f"bench{i:07d}", email=f"bench{i:07d}@example.org", password="!")
                for i in range(start, min(start + batch, recipients))
            )
            Membership.objects.bulk_create(Membership(user=u, platform=platform) for u in users)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2", help="Celery worker concurrencies to send with")
    parser.add_argument("--chunk", type=int, default=5000, help="BUILDER_SEND_CHUNK")
    parser.add_argument(
        "--rounds", type=int, default=1, help="sends and their baseline, interleaved (A B A B), this many times"
    )
    parser.add_argument("--sends-only", action="store_true", help="skip the two preview phases")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        setup_django()
        result = phase_send(int(args.workers)) if args.phase == "send" else PHASES[args.phase]()
        print(json.dumps(result))
        return

    if not os.environ.get("REDIS_URL"):
        sys.exit("Set REDIS_URL (and DATABASE_URL to a PostgreSQL database), see the docstring.")
    ensure_database()
    os.environ.update(_env(args.chunk))
    setup_django()
    seed(args.recipients)

    results: dict = {
        "settings": {"recipients": args.recipients, "chunk": args.chunk, "workers": args.workers, "rounds": args.rounds}
    }
    if not args.sends_only:
        print("preview (builder) ...", flush=True)
        results["preview"] = run_phase("preview", chunk=args.chunk)
        print("preview_python (baseline) ...", flush=True)
        results["preview_python"] = run_phase("preview_python", chunk=args.chunk)
    results["send"], results["send_one_call"], results["ratios"] = [], [], []
    for round_ in range(1, args.rounds + 1):
        # The builder's send and its baseline one after the other, round after round, so
        # that a busy moment of a shared machine weighs on both sides of each ratio.
        sends = []
        for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
            print(f"round {round_}: send with {workers} worker(s) ...", flush=True)
            sends.append(_loaded(lambda w=workers: run_phase("send", chunk=args.chunk, workers=w)))
        print(f"round {round_}: send_one_call (baseline) ...", flush=True)
        baseline = _loaded(lambda: run_phase("send_one_call", chunk=args.chunk))
        results["send"].extend(sends)
        results["send_one_call"].append(baseline)
        for send in sends:
            ratio = round(send["seconds"] / baseline["seconds"], 2)
            results["ratios"].append({"round": round_, "workers": send["workers"], "builder_over_one_call": ratio})
    write_result("builder", results)


def _loaded(phase) -> dict:
    """The phase's result with the 1-minute load average before and after it."""
    before = round(os.getloadavg()[0], 2)
    result = phase()
    result["load_average_1m"] = [before, round(os.getloadavg()[0], 2)]
    return result


if __name__ == "__main__":
    main()

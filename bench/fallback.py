"""Channel fallback and escalation: what they cost a 100k send, measured in one run.

`python -m bench.fallback [--size 100000] [--repeat 2]` (PostgreSQL; its own
database, `bench_fallback` unless DATABASE_URL says otherwise). Providers are
out of the picture (`bench.null_backend.NullBackend` for email, SMS and push);
dispatch runs in this process.

1. in-app, a type without a policy vs a type that escalates (the plan is written
   with the rows);
2. SMS, a type without a policy vs a type with a fallback that nobody needs
   (everyone has a phone);
3. the escalation sweep of the escalating send: every in-app row unread, so one
   email row each, written and dispatched;
4. push, else SMS, for users none of whom has a device: the write-time fallback
   (every push row failed, one SMS row each) and the SMS dispatch.

Each timing is `notification_send(..., wait=True)` from the call to the counts;
the best of `--repeat` runs is compared (the machine may be shared). Every run
checks that each recipient got exactly one row per channel.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta

for channel in ("EMAIL", "SMS", "PUSH"):
    os.environ.setdefault(f"NOTIFY_{channel}_BACKEND", "bench.null_backend.NullBackend")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_fallback")

from bench import common  # noqa: E402


def _ensure_users(count: int) -> list[int]:
    from django.db import connection

    from notifications.models import User

    have = User.objects.filter(username__startswith="fallback-").count()
    if have < count:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO notifications_user (password, is_superuser, username, first_name, last_name, is_staff,
                    is_active, date_joined, email, phone_number, timezone, is_service_account)
                SELECT '', false, 'fallback-' || g, '', '', false, true, now(), 'fallback-' || g || '@example.com',
                    '+2519' || lpad(g::text, 8, '0'), 'UTC', false
                FROM generate_series(%s, %s) AS g
                """,
                [have + 1, count],
            )
    return list(
        User.objects.filter(username__startswith="fallback-").order_by("id").values_list("id", flat=True)[:count]
    )


def _reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE notifications_notification, notifications_inboxcounter, notifications_deliveryplan")
        cursor.execute("VACUUM ANALYZE notifications_notification")


def _send(platform, source, channels, ids, notification_type):
    from notifications.pipeline import Message, Recipient, notification_send

    started = time.perf_counter()
    result = notification_send(
        platform=platform,
        source=source,
        channels=channels,
        recipients=[Recipient(user_id=i) for i in ids],
        message=Message(title="Exam tomorrow", body="Your exam starts at 9:00.", notification_type=notification_type),
    )
    return time.perf_counter() - started, result


def run(*, size: int, repeat: int, parts: set[str]) -> dict:
    from notifications.models import Notification, Platform
    from notifications.pipeline import dispatch
    from notifications.pipeline.policies import Policy, register_policy_lookup

    # One process: no Celery workers to hand chunks to.
    dispatch._QUEUE = None
    policies = {
        "bench_escalating": Policy(escalation_channel="email", escalation_after_seconds=1800),
        "bench_sms_fallback": Policy(fallback={"sms": "email"}),
        "bench_push_else_sms": Policy(fallback={"push_notification": "sms"}),
    }
    register_policy_lookup(
        lambda *, platform_id, notification_types: {t: policies[t] for t in notification_types if t in policies}
    )
    platform, _ = Platform.objects.get_or_create(key="bench-fallback", defaults={"name": "Bench fallback"})
    ids = _ensure_users(size)
    out: dict = {"recipients": size, "repeat": repeat}

    def best(label, channels, type_, expect_rows):
        times = []
        for n in range(repeat):
            _reset()
            seconds, result = _send(platform, f"bench:{label}:{n}", channels, ids, type_)
            rows = Notification.objects.filter(source=f"bench:{label}:{n}").count()
            assert rows == expect_rows, (label, rows, expect_rows)
            assert result.pending == 0, (label, result)
            times.append(seconds)
        out[label] = {"best_s": round(min(times), 3), "runs_s": [round(t, 3) for t in times]}
        return min(times)

    if "in_app" in parts:
        plain_in_app = best("in_app_plain", ["in_app"], "bench_plain", size)
        escalating = best("in_app_escalating", ["in_app"], "bench_escalating", size)
        out["in_app_ratio"] = round(escalating / plain_in_app, 3)
    if "sms" in parts:
        plain_sms = best("sms_plain", ["sms"], "bench_plain", size)
        with_fallback = best("sms_with_unused_fallback", ["sms"], "bench_sms_fallback", size)
        out["sms_ratio"] = round(with_fallback / plain_sms, 3)
    if "escalation" in parts:
        _escalation(out, platform, ids, size)
    if "push" in parts:
        # Push, else SMS, for users without devices: 2 rows each (push failed, SMS sent).
        push_else_sms = best("push_else_sms_no_devices", ["push_notification"], "bench_push_else_sms", 2 * size)
        plain_push = best("push_plain_no_devices", ["push_notification"], "bench_plain", size)
        out["push_else_sms_vs_plain_push"] = round(push_else_sms / plain_push, 3)
    return out


def _escalation(out: dict, platform, ids: list[int], size: int) -> None:
    from django.utils import timezone

    from notifications.models import DeliveryPlan, Notification
    from notifications.pipeline.escalation import escalation_run

    # An escalating in-app send, swept 31 minutes on: every row unread, so one email each.
    _reset()
    _send(platform, "bench:escalate", ["in_app"], ids, "bench_escalating")
    plan = DeliveryPlan.objects.get(source="bench:escalate")
    started = time.perf_counter()
    escalation_run(item_id={"plan": plan.pk, "now": (timezone.now() + timedelta(minutes=31)).isoformat()})
    out["escalation_sweep_s"] = round(time.perf_counter() - started, 3)
    emails = Notification.objects.filter(source="bench:escalate", channel="email", rule="escalation")
    assert emails.count() == size and emails.filter(delivery_status="sent").count() == size


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fallback")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--parts", default="in_app,sms,escalation,push", help="which measurements (comma separated)")
    args = parser.parse_args()
    common.setup()
    result = run(size=args.size, repeat=args.repeat, parts=set(args.parts.split(",")))
    path = common.write("fallback", result)
    print(path)
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()

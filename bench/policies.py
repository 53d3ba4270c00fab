"""What delivery policies cost: a 100k in-app and a 100k SMS send, without and with rules, in one run.

Each send goes through the front door (`notification_send`) to 100,000 users
with a phone number, half in Africa/Addis_Ababa and half in America/Lima.
Four modes, timed from the call until every row is written and every due SMS
handed to the backend (a null backend: the benchmark measures our side, not a
provider's):

- `no_rules`: no delivery rule registered (the write path as before the rules);
- `unconfigured`: the quiet-hours rule registered, the platform without quiet hours;
- `quiet_hours`: a platform default window that the Addis Ababa half is inside
  right now (their SMS are deferred, their in-app rows silenced) and the Lima
  half is not.
- `frequency_cap`: both rules registered, no quiet hours, a cap of 3 SMS a day
  (defer): an SMS send counts every recipient in the counter table (one
  upsert per chunk) and all go now; an in-app send meets a platform with caps
  but none on its channel.

Every run is checked: 100,000 rows, and with quiet hours exactly the Addis
Ababa half pending until the window's end. The closing note gives each mode's
ratio to `no_rules` (goal: under 1.10).
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import time as wall_time
from datetime import timedelta

SIZE = 100_000
ZONES = ("Africa/Addis_Ababa", "America/Lima")


def _ensure_users(count: int) -> list[int]:
    from django.db import connection

    from notifications.models import User

    have = User.objects.filter(username__startswith="policies-").count()
    if have < count:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO notifications_user (password, is_superuser, username, first_name, last_name, is_staff,
                    is_active, date_joined, email, phone_number, timezone, is_service_account)
                SELECT '', false, 'policies-' || g, '', '', false, true, now(), '',
                    '+2519' || lpad(g::text, 8, '0'),
                    CASE WHEN g %% 2 = 0 THEN %s ELSE %s END, false
                FROM generate_series(%s, %s) AS g
                """,
                [ZONES[0], ZONES[1], have + 1, count],
            )
    return list(
        User.objects.filter(username__startswith="policies-").order_by("id").values_list("id", flat=True)[:count]
    )


def _reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE notifications_notification, notifications_inboxcounter, templates_app_frequencycapcount"
        )


def _window_around_now_in_addis() -> tuple[wall_time, wall_time]:
    """A three-hour window the Addis Ababa half is inside now; Lima (8 hours behind) is outside it."""
    from django.utils import timezone

    from notifications.zones import zone

    local = timezone.now().astimezone(zone(ZONES[0]))
    start = (local - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (local + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    return start, end


def _configure(platform, mode: str) -> None:
    from notifications.pipeline import rules
    from templates_app.models import FrequencyCap
    from templates_app.services.delivery_rules import QUIET_HOURS
    from templates_app.services.frequency_caps import FREQUENCY_CAP

    for rule in (QUIET_HOURS, FREQUENCY_CAP):
        if mode == "no_rules":
            rules.unregister_rule(rule.name)
        else:
            rules.register_rule(rule)
    if mode == "frequency_cap":
        FrequencyCap.objects.update_or_create(platform=platform, channel="sms", defaults={"limit": 3})
    else:
        FrequencyCap.objects.filter(platform=platform).delete()
    if mode == "quiet_hours":
        platform.quiet_hours_start, platform.quiet_hours_end = _window_around_now_in_addis()
    else:
        platform.quiet_hours_start = platform.quiet_hours_end = None
    platform.save(update_fields=["quiet_hours_start", "quiet_hours_end"])


def _one(platform, ids: list[int], channel: str, mode: str) -> float:
    from notifications.models import Notification
    from notifications.pipeline import Message, Recipient, notification_send

    _reset()
    _configure(platform, mode)
    recipients = [Recipient(user_id=pk) for pk in ids]
    message = Message(title="Exam tomorrow", body="Your exam starts at 9:00.", short_message="Exam at 9:00")
    start = time.perf_counter()
    result = notification_send(
        platform=platform,
        source=f"bench:policies:{channel}:{mode}",
        channels=[channel],
        recipients=recipients,
        message=message,
    )
    elapsed = time.perf_counter() - start
    rows = Notification.objects.filter(source=f"bench:policies:{channel}:{mode}")
    assert result.total_recipients == len(ids) and rows.count() == len(ids), (result, mode)
    deferred = rows.filter(delivery_status="pending", rule__in=("quiet_hours", "frequency_cap")).count()
    if mode == "quiet_hours" and channel == "sms":
        assert deferred == len(ids) // 2 and result.sent == len(ids) - deferred, (result, deferred)
    elif mode == "quiet_hours":
        assert rows.filter(rule="quiet_hours", delivery_status="sent").count() == len(ids) // 2
    else:
        assert deferred == 0 and result.sent == len(ids), result
    if mode == "frequency_cap" and channel == "sms":
        from templates_app.models import FrequencyCapCount

        assert FrequencyCapCount.objects.filter(count=1).count() == len(ids)
    return elapsed


def run(*, size: int = SIZE, repeat: int = 3) -> dict:
    from bench import common
    from notifications.models import Platform

    platform, _ = Platform.objects.get_or_create(key="bench-policies", defaults={"name": "Bench policies"})
    ids = _ensure_users(size)
    modes = ("no_rules", "unconfigured", "quiet_hours", "frequency_cap")
    results = {}
    try:
        for channel in ("in_app", "sms"):
            samples: dict[str, list[float]] = {m: [] for m in modes}
            # Interleaved, so a busy neighbour on a shared machine slows every mode alike.
            for _ in range(repeat):
                for mode in modes:
                    samples[mode].append(_one(platform, ids, channel, mode))
            medians = {m: statistics.median(s) for m, s in samples.items()}
            results[channel] = {
                mode: {
                    "seconds_median": round(medians[mode], 3),
                    "seconds_best": round(min(samples[mode]), 3),
                    "runs": [round(s, 3) for s in samples[mode]],
                    "ratio_to_no_rules": round(medians[mode] / medians["no_rules"], 3),
                }
                for mode in modes
            }
    finally:
        _configure(platform, "unconfigured")
        _reset()
    note = "; ".join(
        f"{channel}: quiet hours x{r['quiet_hours']['ratio_to_no_rules']}, "
        f"frequency cap x{r['frequency_cap']['ratio_to_no_rules']}, "
        f"rule unconfigured x{r['unconfigured']['ratio_to_no_rules']}"
        for channel, r in results.items()
    )
    payload = {
        "recipients": size,
        "repeat": repeat,
        "sms_backend": os.environ.get("NOTIFY_SMS_BACKEND", ""),
        "results": results,
        "note": f"Median send time relative to the same send without rules (goal < 1.10): {note}.",
    }
    path = common.write("policies", payload)
    print(payload["note"])
    print(f"written to {path}")
    return payload

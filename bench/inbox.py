"""Inbox reads with 2M notification rows, one user holding 200k of them (half unread).

Measured the way the views run them (`selectors`), 1,000 calls each, against
the baseline of counting rows (COUNT(*) over the partial inbox index) that a
counter-less inbox would run; then the two endpoints end to end through
Django's test client (token auth, permission check, tenancy, envelope). The
EXPLAIN ANALYZE of each query goes into the results.
"""

from __future__ import annotations

import time

from django.db import connection

TOTAL_ROWS = 2_000_000
TARGET_ROWS = 200_000
OTHER_USERS = 10_000


def _build(platform) -> None:
    from notifications.inbox import inbox_counters_rebuild
    from notifications.models import User

    print("inbox: generating 2M notification rows (once; --rebuild to redo) ...", flush=True)
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE notifications_notification, notifications_inboxcounter")
        if not User.objects.filter(username="inbox-target").exists():
            cursor.execute(
                """
                INSERT INTO notifications_user (password, is_superuser, username, first_name, last_name, is_staff,
                    is_active, date_joined, email, phone_number, timezone, is_service_account)
                SELECT '', false, 'inbox-' || g, '', '', false, true, now(), '', '', 'UTC', false
                FROM generate_series(1, %s) AS g
                UNION ALL
                SELECT '', false, 'inbox-target', '', '', false, true, now(), '', '', 'UTC', false
                """,
                [OTHER_USERS],
            )
        target = User.objects.get(username="inbox-target").pk
        first_other = User.objects.get(username="inbox-1").pk
        # Generated data is valid by construction: skip per-row FK checks and
        # the counter triggers while loading, then count once.
        cursor.execute("SET session_replication_role = replica")
        try:
            for user_sql, count, params in (
                ("%s", TARGET_ROWS, [target]),
                ("%s + (g %% %s)", TOTAL_ROWS - TARGET_ROWS, [first_other, OTHER_USERS]),
            ):
                cursor.execute(
                    f"""
                    INSERT INTO notifications_notification (id, platform_id, user_id, recipient_key, address, channel,
                        source, notification_type, level, title, body, html, short_message, context, data, image_url,
                        status, delivery_status, error, attempts, provider_message_id, units_sent, units_failed,
                        claimed_until, next_attempt_at, created_at, updated_at, sent_at, read_at, rule, provider)
                    SELECT gen_random_uuid(), %s, u, 'user:' || u, '',
                        (ARRAY['in_app', 'email', 'push_notification'])[1 + g %% 3],
                        'bench:inbox:' || u || ':' || g, 'system_alert', 'info', 'Notification ' || g,
                        'Body of notification ' || g, '', '', '{{}}', '{{}}', '',
                        CASE WHEN g %% 2 = 0 THEN 'UNREAD' ELSE 'READ' END, 'sent', '', 1, '', 1, 0, NULL, NULL,
                        now() - g * interval '1 second', now(), now() - g * interval '1 second', NULL, '', ''
                    FROM (SELECT g, {user_sql} AS u FROM generate_series(1, %s) AS g) AS s
                    """,
                    [platform.pk, *params, count],
                )
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute("ANALYZE notifications_notification")
    inbox_counters_rebuild()
    print(f"  built in {time.perf_counter() - start:.1f} s", flush=True)


def _explain(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def data_set(*, rebuild: bool = False):
    """The benchmark's platform, its 2,000,000 rows seeded when missing (or when asked to)."""
    from notifications.models import Notification, Platform

    platform, _ = Platform.objects.get_or_create(key="bench-inbox", defaults={"name": "Bench inbox"})
    if rebuild or Notification.objects.count() != TOTAL_ROWS:
        _build(platform)
    return platform


def run(*, calls: int, rebuild: bool) -> dict:
    from django.test import Client

    from bench import common
    from notifications import selectors
    from notifications.models import AuthToken, InboxStatus, Membership, Notification, User
    from notifications.realtime_payload import PAYLOAD_FIELDS

    platform = data_set(rebuild=rebuild)
    user = User.objects.get(username="inbox-target")
    # A STUDENT membership carries the inbox endpoints' permission keys on this platform.
    Membership.objects.get_or_create(user=user, platform=platform)
    counts = selectors.inbox_counts(user=user, platform=platform)
    assert counts[InboxStatus.UNREAD] == TARGET_ROWS // 2, counts

    def unread_counter():
        return selectors.inbox_unread_count(user=user, platform=platform)

    def first_page():
        rows = list(selectors.inbox_visible_for(user=user, platform=platform, limit=20, fields=PAYLOAD_FIELDS))
        counts = selectors.inbox_counts(user=user, platform=platform)
        return rows, counts

    def unread_count_rows():
        return selectors.inbox_for(user=user, platform=platform).filter(status=InboxStatus.UNREAD).count()

    def first_page_count_rows():
        rows = list(selectors.inbox_visible_for(user=user, platform=platform, limit=20))
        return rows, selectors.inbox_for(user=user, platform=platform).exclude(status=InboxStatus.CANCELLED).count()

    assert unread_counter() == unread_count_rows()
    page = first_page()[0]
    assert page[0].created_at >= page[-1].created_at and len(page) == 20

    _, token = AuthToken.issue(user=user, name="bench")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def http_unread():
        response = client.get("/api/v1/notifications/unread")
        assert response.status_code == 200, response.content

    def http_first_page():
        response = client.get("/api/v1/notifications", {"limit": 20, "offset": 0})
        assert response.status_code == 200, response.content

    measurements = {}
    for name, fn in (
        ("unread_count", unread_counter),
        ("first_page", first_page),
        ("baseline_unread_count_rows", unread_count_rows),
        ("baseline_first_page_count_rows", first_page_count_rows),
        ("http_unread", http_unread),
        ("http_first_page", http_first_page),
    ):
        for _ in range(20):  # warm caches and connections
            fn()
        measurements[name] = common.timed(fn, calls)
        print(f"inbox {name:32} p50 {measurements[name]['p50_ms']:7.3f} ms  p99 {measurements[name]['p99_ms']:7.3f} ms")

    from notifications.models import InboxCounter

    plans = {
        "unread_count": _explain(InboxCounter.objects.filter(user=user, platform=platform).values("unread")),
        "first_page": _explain(
            selectors.inbox_visible_for(user=user, platform=platform, limit=20, fields=PAYLOAD_FIELDS)
        ),
        "baseline_unread_count_rows": _explain(
            selectors.inbox_for(user=user, platform=platform).filter(status=InboxStatus.UNREAD).order_by().values("id")
        ),
    }
    path = common.write(
        "inbox",
        {
            "rows": Notification.objects.count(),
            "user_rows": TARGET_ROWS,
            "user_unread": counts[InboxStatus.UNREAD],
            "calls": calls,
            "baseline": "COUNT(*) of the user's rows over the partial inbox index instead of the counter",
            "measurements": measurements,
            "plans": plans,
        },
    )
    for name, plan in plans.items():
        print(f"--- EXPLAIN ANALYZE {name}\n{plan}")
    print(f"wrote {path}")
    return measurements

"""SQLite development databases keep their inbox-counter triggers through schema changes.

SQLite cannot change a column in place: Django rebuilds the table (create a
copy, move the rows, drop the old one, rename) for many field changes, and the
rebuild drops the table's triggers. PostgreSQL keeps them. So after every
migrate on SQLite the triggers that keep `InboxCounter` exact (created by
migration 0004) are put back when missing, and the counters recounted from the
rows, which is cheap at development scale.
"""

from __future__ import annotations

import importlib

from django.db import connections

_COUNTERS = "notifications.migrations.0004_delivery_retries_and_inbox_counters"
_NAMES = {f"notifications_inbox_counter_{name}" for name in ("insert", "update_old", "update_new", "delete")}


def counter_triggers_ensure(sender=None, using: str = "default", **kwargs) -> None:
    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    counters = importlib.import_module(_COUNTERS)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'notifications_notification'"
        )
        if _NAMES <= {row[0] for row in cursor.fetchall()}:
            return
        for statement in (*counters.SQLITE_REVERSE, *counters.SQLITE_FORWARD):
            cursor.execute(statement)
        cursor.execute("DELETE FROM notifications_inboxcounter")
        cursor.execute(counters.BACKFILL)

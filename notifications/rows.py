"""Building and inserting delivery rows in bulk (used by `services.deliveries_write`).

A 100k-recipient send must not pay for 100k model instances, 100k INSERTs
or 100k parameter lists. Rows are plain tuples in `COLUMNS` order; on
PostgreSQL each chunk is one

    INSERT ... SELECT <scalars and unnest'ed arrays> ON CONFLICT DO NOTHING RETURNING id

where a column that holds the same value on every row (a bulk message's
title, body, type ...) travels once as a scalar and only the columns that vary
(id, user, recipient key ...) travel as arrays. `RETURNING id` tells which
rows this call created, so a re-run announces nothing twice. Other databases
(SQLite in development) get a check for existing keys and `bulk_create`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

import psycopg
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from notifications.models import Notification

# The columns the pipeline sets, in the order of a row tuple. Any other
# concrete column of Notification (added later) is written with its default.
COLUMNS = (
    "id",
    "platform_id",
    "user_id",
    "recipient_key",
    "address",
    "channel",
    "source",
    "notification_type",
    "level",
    "title",
    "body",
    "html",
    "short_message",
    "context",
    "data",
    "image_url",
    "status",
    "delivery_status",
    "error",
    "attempts",
    "provider_message_id",
    "units_sent",
    "units_failed",
    "claimed_until",
    "next_attempt_at",
    "created_at",
    "updated_at",
    "sent_at",
    "read_at",
)
INDEX = {name: i for i, name in enumerate(COLUMNS)}
_JSON = {"context", "data"}


def uuid7s(count: int) -> list[str]:
    """Time-ordered UUIDs (RFC 9562 version 7), as strings.

    Random v4 keys scatter a 100k-row insert over the whole primary-key index;
    time-ordered ones append at its right edge, which keeps bulk writes fast on
    a table of millions. Python 3.11 has no uuid.uuid7; strings because
    building 100k UUID objects only to have them dumped again is measurable.
    """
    ms = f"{time.time_ns() // 1_000_000:012x}"
    head = f"{ms[:8]}-{ms[8:]}-7"
    randomness = os.urandom(8 * count).hex()
    ids = []
    for i in range(count):
        r = randomness[16 * i : 16 * i + 16]
        # 12-bit sequence, then the variant (10xx) and 62 random bits
        ids.append(f"{head}{i & 0xFFF:03x}-{(int(r[0], 16) & 0x3) | 0x8:x}{r[1:4]}-{r[4:]}")
    return ids


def _dump(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder)


def _fields():
    by_column = {f.column: f for f in Notification._meta.concrete_fields}
    extra = [f for column, f in by_column.items() if column not in INDEX]
    return by_column, extra


def insert_postgresql(rows: Sequence[tuple]) -> set:
    """Insert row tuples, skipping existing (source, channel, recipient_key); returns the new ids."""
    by_column, extra = _fields()
    columns = list(zip(*rows, strict=True))
    count = len(rows)
    selects, arrays, names, scalars, array_params = [], [], [], [], []

    def add(column: str, values: Sequence, field) -> None:
        is_json = column in _JSON or field.get_internal_type() == "JSONField"
        db_type = "jsonb" if is_json else field.db_type(connection)
        first = values[0]
        # The id always goes in an array: it gives unnest its row count.
        if column != "id" and values.count(first) == count:
            selects.append(f"%s::{db_type}")
            scalars.append(_dump(first) if is_json else first)
            return
        name = f"c_{column}"
        names.append(name)
        # Arrays go in binary (%b): no quoting or escaping of 100k strings.
        # JSON travels as text[] and is cast per row.
        selects.append(f"u.{name}::jsonb" if is_json else f"u.{name}")
        arrays.append("%b::text[]" if is_json else f"%b::{db_type}[]")
        array_params.append([_dump(v) for v in values] if is_json else list(values))

    for column, values in zip(COLUMNS, columns, strict=True):
        add(column, values, by_column[column])
    for field in extra:
        value = field.get_db_prep_save(field.get_default(), connection)
        add(field.column, (value,) * count, field)

    quote = connection.ops.quote_name
    target = ", ".join(quote(c) for c in (*COLUMNS, *(f.column for f in extra)))
    sql = (
        f"INSERT INTO {quote(Notification._meta.db_table)} ({target}) SELECT {', '.join(selects)} "
        f"FROM unnest({', '.join(arrays)}) AS u({', '.join(names)}) "
        "ON CONFLICT (source, channel, recipient_key) DO NOTHING RETURNING id::text"
    )
    connection.ensure_connection()
    # A server-side binding cursor on Django's own connection (same
    # transaction): Django's default client-side binding would render every
    # array into the SQL text.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, scalars + array_params)
        return {row[0] for row in cursor.fetchall()}


def insert_generic(rows: Sequence[tuple]) -> set:
    """Other databases: skip keys that exist, then bulk_create.

    Runs inside the caller's transaction; SQLite serialises writers, so no
    other writer can add a key between the check and the insert.
    """
    source, key, channel = INDEX["source"], INDEX["recipient_key"], INDEX["channel"]
    existing = set(
        Notification.objects.filter(source=rows[0][source], recipient_key__in={r[key] for r in rows}).values_list(
            "channel", "recipient_key"
        )
    )
    fresh = [r for r in rows if (r[channel], r[key]) not in existing]
    Notification.objects.bulk_create(
        [Notification(**dict(zip(COLUMNS, r, strict=True))) for r in fresh], ignore_conflicts=True
    )
    return {str(r[INDEX["id"]]) for r in fresh}


def insert(rows: Sequence[tuple]) -> set:
    if not rows:
        return set()
    if connection.vendor == "postgresql":
        return insert_postgresql(rows)
    return insert_generic(rows)


def contacts(user_ids: list[int], *, addresses: bool = True) -> dict[int, tuple[str, str]]:
    """{user id: (email, phone)} of the users that exist (empty strings without `addresses`)."""
    if not user_ids:
        return {}
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if connection.vendor != "postgresql":
        return {
            pk: (email, phone)
            for pk, email, phone in User.objects.filter(pk__in=user_ids).values_list("pk", "email", "phone_number")
        }
    # One binary array parameter instead of an IN list of thousands of placeholders.
    table = connection.ops.quote_name(User._meta.db_table)
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        if addresses:
            cursor.execute(f"SELECT id, email, phone_number FROM {table} WHERE id = ANY(%b::bigint[])", [user_ids])
            return {pk: (email, phone) for pk, email, phone in cursor.fetchall()}
        cursor.execute(f"SELECT id FROM {table} WHERE id = ANY(%b::bigint[])", [user_ids])
        return dict.fromkeys((row[0] for row in cursor.fetchall()), ("", ""))


class RowView:
    """Attribute access to a row tuple, for `created_notification_payload` and `announce`."""

    __slots__ = ("row", "user_id")

    def __init__(self, row: tuple):
        self.row = row
        self.user_id = row[INDEX["user_id"]]

    def __getattr__(self, name):
        try:
            return self.row[INDEX[name]]
        except KeyError:
            raise AttributeError(name) from None

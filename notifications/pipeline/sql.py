"""The SQL that writes delivery rows in bulk and records their outcomes.

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

import itertools
import json
import os
import struct
import time
from collections.abc import Iterable, Sequence

import psycopg
from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models.base import ModelState
from psycopg.adapt import Dumper
from psycopg.pq import Format

from notifications.models import Notification
from notifications.pipeline.parts import Outcome

# The columns the pipeline sets. Any other concrete column of Notification
# (added later) is written with its default.
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
    "rule",
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
_JSON = {"context", "data"}


class Batch:
    """Rows to insert, column by column: a list per column that varies, one value per column that does not.

    A bulk message's rows differ in a handful of columns (id, user, recipient
    key); building 100k tuples of 29 values only to take them apart again was
    most of the Python time of a fan-out.
    """

    def __init__(self, size: int):
        self.size = size
        self.values: dict[str, object] = {}
        self.varies: set[str] = set()
        # (platform id, source, type, policies.Policy) to keep beside the rows (see policies.plans_write).
        self.plans: list[tuple] = []
        # Some rows are fallbacks decided while building (rule "fallback").
        self.fell_back = False

    def set(self, name: str, value) -> None:
        if isinstance(value, list):
            if len(value) != self.size:
                raise ValueError(f"column {name} has {len(value)} values for {self.size} rows")
            # One value on every row travels once (list.count runs in C).
            if name != "id" and self.size and value.count(value[0]) == self.size:
                value = value[0]
                self.varies.discard(name)  # set again (a column corrected after the first pass)
            else:
                self.varies.add(name)
        self.values[name] = value

    @classmethod
    def concat(cls, batches: list[Batch]) -> Batch:
        """The rows of several batches as one, so that many small sends cost one INSERT."""
        plans = [plan for b in batches for plan in b.plans]
        fell_back = any(b.fell_back for b in batches)
        batches = [b for b in batches if b.size]
        if len(batches) == 1 and len(plans) == len(batches[0].plans):
            return batches[0]
        merged = cls(sum(b.size for b in batches))
        merged.plans = plans
        merged.fell_back = fell_back
        if not batches:
            return merged
        first = batches[0].values if batches else {}
        for name, value in first.items():
            if all(name not in b.varies and b.values[name] == value for b in batches):
                merged.values[name] = value
            else:
                merged.set(name, [v for b in batches for v in b.column(name)])
        return merged

    def column(self, name: str) -> list:
        value = self.values[name]
        return value if name in self.varies else [value] * self.size

    def get(self, name: str, index: int):
        value = self.values[name]
        return value[index] if name in self.varies else value

    def view(self, index: int) -> RowView:
        return RowView(self, index)


class RowView:
    """One row of a Batch with attribute access, for `created_notification_payload` and `announce`."""

    __slots__ = ("batch", "index", "user_id")

    def __init__(self, batch: Batch, index: int):
        self.batch = batch
        self.index = index
        self.user_id = batch.get("user_id", index)

    def __getattr__(self, name):
        try:
            return self.batch.get(name, self.index)
        except KeyError:
            raise AttributeError(name) from None


class RowViews(Sequence):
    """Rows of a Batch as `RowView`s, made only when read; `user_ids` without making any.

    An in-app fan-out announces 10,000 rows per chunk and builds a payload
    only for the few whose user has a socket: 10,000 views made up front were
    most of the writer thread's CPU.
    """

    def __init__(self, batch: Batch, indexes: Sequence[int]):
        self.batch = batch
        self.indexes = indexes

    def __len__(self) -> int:
        return len(self.indexes)

    def __getitem__(self, position: int) -> RowView:
        return RowView(self.batch, self.indexes[position])

    @property
    def user_ids(self) -> list:
        column = self.batch.column("user_id")
        if len(self.indexes) == self.batch.size:
            return column
        return [column[i] for i in self.indexes]


def uuid7s(count: int) -> list[str]:
    """Time-ordered UUIDs (RFC 9562 version 7), as strings.

    Random v4 keys scatter a 100k-row insert over the whole primary-key index;
    time-ordered ones append at its right edge, which keeps bulk writes fast on
    a table of millions. Python 3.11 has no uuid.uuid7; strings because
    building 100k UUID objects only to have them dumped again is measurable.
    """
    ms = f"{time.time_ns() // 1_000_000:012x}"
    head = f"{ms[:8]}-{ms[8:]}-7"
    # 64 random bits per id, the first byte's top two set to the variant (10xx)
    # in one C-level pass rather than a parse and format per id.
    random = bytearray(os.urandom(8 * count))
    random[::8] = random[::8].translate(_VARIANT)
    hexed = random.hex()
    # 12-bit sequence, then the variant and the random bits
    return [
        f"{head}{_SEQUENCE[i & 0xFFF]}{hexed[j : j + 4]}-{hexed[j + 4 : j + 16]}"
        for i, j in zip(range(count), range(0, 16 * count, 16), strict=True)
    ]


_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))
_SEQUENCE = [f"{i:03x}-" for i in range(4096)]


class _PackedArray(bytes):
    """A one-dimensional array without NULLs, already in PostgreSQL's binary format.

    psycopg's binary list dumper packs element by element in Python: for a
    100k fan-out that was a third of the building thread's CPU. Packed here
    with `struct` and `bytes.join` over whole columns, it costs a few
    milliseconds per 10,000 elements.
    """

    oid = 0


class _Int8Array(_PackedArray):
    oid = 1016


class _Int4Array(_PackedArray):
    oid = 1007


class _TextArray(_PackedArray):
    oid = 1009


class _UuidArray(_PackedArray):
    oid = 2951


def _packed_dumper(cls):
    return type(f"{cls.__name__}Dumper", (Dumper,), {"format": Format.BINARY, "oid": cls.oid, "dump": bytes})


_PACKED = (_Int8Array, _Int4Array, _TextArray, _UuidArray)
_PACKED_DUMPERS = [(cls, _packed_dumper(cls)) for cls in _PACKED]
_INT4, _IQ, _II, _I16 = struct.Struct(">i"), struct.Struct(">iq"), struct.Struct(">ii"), struct.Struct(">i16s")
_HEADER = struct.Struct(">iiIii")  # dimensions, has nulls, element type, length, lower bound
_ELEMENT_OIDS = {_Int8Array: 20, _Int4Array: 23, _TextArray: 25, _UuidArray: 2950}


def packed_array(values: list, db_type: str):
    """`values` as a `_PackedArray` for `%b` when its type has a packer and no value is None; else `values`."""
    count = len(values)
    if not count or None in values:
        return values
    kind = _packed_kind(db_type)
    if kind is None or not isinstance(values[0], int if kind in (_Int8Array, _Int4Array) else str):
        return values
    try:
        return _pack(kind, values, count)
    except (TypeError, ValueError, struct.error):  # a value of another type: psycopg's own dumper decides
        return values


def _pack(kind, values: list, count: int):
    if kind is _Int8Array:
        body = b"".join(map(_IQ.pack, itertools.repeat(8, count), values))
    elif kind is _Int4Array:
        body = b"".join(map(_II.pack, itertools.repeat(4, count), values))
    elif kind is _UuidArray:
        blob = bytes.fromhex("".join(values).replace("-", ""))
        if len(blob) != 16 * count:
            return values
        parts = map(blob.__getitem__, map(slice, range(0, 16 * count, 16), range(16, 16 * count + 16, 16)))
        body = b"".join(map(_I16.pack, itertools.repeat(16, count), parts))
    else:
        encoded = list(map(str.encode, values))
        body = b"".join(itertools.chain.from_iterable(zip(map(_INT4.pack, map(len, encoded)), encoded, strict=True)))
    return kind(_HEADER.pack(1, 0, _ELEMENT_OIDS[kind], count, 1) + body)


def _packed_kind(db_type: str):
    base = db_type.split("(", 1)[0].strip().lower()
    if base == "bigint":
        return _Int8Array
    if base == "integer":
        return _Int4Array
    if base == "uuid":
        return _UuidArray
    if base in ("varchar", "text", "character varying"):
        return _TextArray
    return None


def packing_cursor(conn) -> psycopg.Cursor:
    """A server-side binding cursor that can send `packed_array` parameters."""
    cursor = psycopg.Cursor(conn)
    for cls, dumper in _PACKED_DUMPERS:
        cursor.adapters.register_dumper(cls, dumper)
    return cursor


def _dump(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder)


def _columns(batch: Batch):
    """(column, field) in insert order: the batch's columns, then any other with its default."""
    fields = {f.column: f for f in Notification._meta.concrete_fields}
    for column in COLUMNS:
        yield column, fields.pop(column)
    for column, field in fields.items():
        batch.set(column, field.get_db_prep_save(field.get_default(), connection))
        yield column, field


def insert_postgresql(batch: Batch, *, fresh_source: bool = False) -> set[str]:
    """Insert the batch, skipping existing (source, channel, recipient_key); returns the new ids.

    `fresh_source`: the source had no rows when the send began, so a plain
    INSERT is tried first. ON CONFLICT's speculative insertion costs about a
    third more per row; if another writer of the same source got in first,
    the plain INSERT fails on the unique key, its savepoint is rolled back
    and the batch goes in again with ON CONFLICT DO NOTHING.
    """
    if fresh_source:
        try:
            with transaction.atomic():
                return _insert_postgresql(batch, on_conflict=False)
        except (IntegrityError, psycopg.errors.UniqueViolation):
            # Raw psycopg cursor: its own exception, not Django's wrapper.
            pass
    return _insert_postgresql(batch, on_conflict=True)


def _insert_postgresql(batch: Batch, *, on_conflict: bool) -> set[str]:
    selects, arrays, names, scalars, array_params, targets = [], [], [], [], [], []
    for column, field in _columns(batch):
        targets.append(connection.ops.quote_name(column))
        is_json = column in _JSON or field.get_internal_type() == "JSONField"
        db_type = "jsonb" if is_json else field.db_type(connection)
        value = batch.values[column]
        if column not in batch.varies:
            selects.append(f"%s::{db_type}")
            scalars.append(_dump(value) if is_json else value)
            continue
        name = f"c_{column}"
        names.append(name)
        # Arrays go in binary (%b): no quoting or escaping of 100k strings.
        # JSON travels as text[] and is cast per row.
        selects.append(f"u.{name}::jsonb" if is_json else f"u.{name}")
        arrays.append("%b::text[]" if is_json else f"%b::{db_type}[]")
        array_params.append(
            packed_array([_dump(v) for v in value] if is_json else value, "text" if is_json else db_type)
        )
    sql = (
        f"INSERT INTO {connection.ops.quote_name(Notification._meta.db_table)} ({', '.join(targets)}) "
        f"SELECT {', '.join(selects)} FROM unnest({', '.join(arrays)}) AS u({', '.join(names)}) "
        # A plain INSERT writes every row or fails: its ids are the batch's, and
        # 10,000 of them sent back as text cost both sides for nothing.
        + ("ON CONFLICT (source, channel, recipient_key) DO NOTHING RETURNING id::text" if on_conflict else "")
    )
    connection.ensure_connection()
    # A server-side binding cursor on Django's own connection (same
    # transaction): Django's default client-side binding would render every
    # array into the SQL text.
    with packing_cursor(connection.connection) as cursor:
        cursor.execute(sql, scalars + array_params)
        return {row[0] for row in cursor.fetchall()} if on_conflict else set(batch.column("id"))


def insert_generic(batch: Batch) -> set[str]:
    """Other databases: skip keys that exist, then bulk_create.

    Runs inside the caller's transaction; SQLite serialises writers, so no
    other writer can add a key between the check and the insert.
    """
    sources, keys, channels = batch.column("source"), batch.column("recipient_key"), batch.column("channel")
    existing = set(
        Notification.objects.filter(source__in=set(sources), recipient_key__in=set(keys)).values_list(
            "source", "channel", "recipient_key"
        )
    )
    fresh = [i for i in range(batch.size) if (sources[i], channels[i], keys[i]) not in existing]
    Notification.objects.bulk_create(
        [Notification(**{c: batch.get(c, i) for c in COLUMNS}) for i in fresh], ignore_conflicts=True
    )
    return {str(batch.get("id", i)) for i in fresh}


def insert(batch: Batch, *, fresh_source: bool = False) -> set[str]:
    if not batch.size:
        return set()
    if connection.vendor == "postgresql":
        return insert_postgresql(batch, fresh_source=fresh_source)
    return insert_generic(batch)


def contacts(user_ids: list[int], *, addresses: bool = True) -> dict[int, tuple[str, str]]:
    """{user id: (email, phone)} of the users that exist (empty strings without `addresses`)."""
    return _contacts(user_ids, addresses=addresses, zones=False)[0]


def contacts_and_zones(
    user_ids: list[int], *, addresses: bool = True
) -> tuple[dict[int, tuple[str, str]], dict[int, str]]:
    """`contacts` and {user id: IANA time zone} from the same query (for delivery rules that read zones)."""
    return _contacts(user_ids, addresses=addresses, zones=True)


def _contacts(user_ids: list[int], *, addresses: bool, zones: bool) -> tuple[dict, dict]:
    if not user_ids:
        return {}, {}
    User = get_user_model()
    fields = ["id", "email", "phone_number"] if addresses else ["id"]
    if zones:
        fields.append("timezone")
    if connection.vendor != "postgresql":
        rows = list(User.objects.filter(pk__in=user_ids).values_list(*["pk", *fields[1:]]))
    else:
        rows = _user_rows(user_ids, [User._meta.get_field(name) for name in fields])
    found = (
        {row[0]: (row[1], row[2]) for row in rows} if addresses else dict.fromkeys((row[0] for row in rows), ("", ""))
    )
    return found, ({row[0]: row[-1] for row in rows} if zones else {})


def accounts(user_ids: list[int], *, fields: Sequence[str]) -> dict:
    """{user id: user} of the users that exist, with `fields` loaded (any other is read when first used).

    What `User.objects.only(*fields).in_bulk(user_ids)` gives, for the
    renderers of a chunk of thousands: that went through `Model.__init__`
    per account, a sixth of a builder worker's time.
    """
    User = get_user_model()
    if not user_ids:
        return {}
    if connection.vendor != "postgresql":
        return User.objects.only(*fields).in_bulk(user_ids)
    loaded = [User._meta.get_field(name) for name in fields]
    return {user.pk: user for user in instances(User, loaded, _user_rows(user_ids, loaded))}


def _user_rows(user_ids: list[int], fields: list) -> list[tuple]:
    """PostgreSQL: `fields`' columns of the users with these ids, the ids as one binary array parameter
    (an IN list of thousands of placeholders costs more to build and quote than the query)."""
    User = get_user_model()
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    connection.ensure_connection()
    with packing_cursor(connection.connection) as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {connection.ops.quote_name(User._meta.db_table)} WHERE id = ANY(%b::bigint[])",
            [packed_array(user_ids, "bigint")],
        )
        return cursor.fetchall()


def instances(model, fields: Sequence, rows: Iterable[tuple], *, converters: list | None = None, **known) -> list:
    """Instances of `model` from rows of `fields`' columns read with raw SQL, as `Model.from_db` leaves them.

    Built without `Model.__init__`, whose walk over every field costs tens of
    microseconds a row: the values go straight into each instance's
    `__dict__` after the fields' converters (`converters`: (index, field,
    converter) triples, by default each field's own). `known`: attributes
    every instance gets. A field not loaded is deferred, read when first
    used. For models without init signals.
    """
    if converters is None:
        converters = [
            (i, field, convert) for i, field in enumerate(fields) for convert in field.get_db_converters(connection)
        ]
    names = [field.attname for field in fields]
    alias = connection.alias
    built = []
    for values in rows:
        if converters:
            values = list(values)
            for i, field, convert in converters:
                values[i] = convert(values[i], field, connection)
        instance = model.__new__(model)
        instance.__dict__.update(zip(names, values, strict=True), **known)
        instance._state = ModelState()
        instance._state.adding, instance._state.db = False, alias
        built.append(instance)
    return built


def time_zones(user_ids: list[int]) -> dict[int, str]:
    """{user id: IANA time zone} of the users that exist."""
    return _contacts(user_ids, addresses=False, zones=True)[1]


def record(outcomes: list[Outcome], *, now) -> None:
    """Write the results of sent deliveries; only rows still pending are touched (never a sent row back).

    PostgreSQL gets one UPDATE ... FROM unnest for the lot; other databases one
    UPDATE per row.
    """
    if not outcomes:
        return
    if connection.vendor != "postgresql":
        for outcome in outcomes:
            values = outcome._asdict()
            for keep in ("provider", "rule"):  # empty: the row keeps its own
                if not values[keep]:
                    del values[keep]
            Notification.objects.filter(pk=values.pop("id"), delivery_status="pending").update(
                **values, claimed_until=None, updated_at=now
            )
        return
    table = connection.ops.quote_name(Notification._meta.db_table)
    columns = list(zip(*outcomes, strict=True))
    # Arrays go in binary (%b), like the INSERT's: no quoting of each value.
    # "Still pending" travels as a per-row value (v.was) rather than a literal:
    # with `delivery_status = 'pending'` the planner may read every entry of
    # the pending-rows partial index, dead ones included after a large send,
    # instead of looking up these few ids by primary key.
    sql = (
        f"UPDATE {table} AS n SET delivery_status = v.status, error = v.error, attempts = v.attempts, "
        "provider_message_id = v.message_id, units_sent = v.units_sent, units_failed = v.units_failed, "
        "sent_at = v.sent_at, claimed_until = NULL, next_attempt_at = v.next_at, updated_at = %s, "
        "provider = CASE WHEN v.provider = '' THEN n.provider ELSE v.provider END, "
        "rule = CASE WHEN v.rule = '' THEN n.rule ELSE v.rule END "
        "FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::int[], %b::text[], %b::int[], %b::int[], "
        "%b::timestamptz[], %b::timestamptz[], %b::text[], %b::text[], %b::text[]) "
        "AS v(id, status, error, attempts, message_id, units_sent, units_failed, sent_at, next_at, provider, rule, "
        "was) "
        "WHERE n.id = v.id AND n.delivery_status = v.was"
    )
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, [now, *(list(c) for c in columns), ["pending"] * len(outcomes)])

"""Recipient sources: what a request names, and who that is, worked out in SQL.

A source yields two querysets rather than lists: the accounts it reaches
(platform members) and, for email-like sources, the addresses that match no
member (people without an account, reachable by email only). Lists a request
carries (emails, usernames, a CSV upload) are first written to `StagedEntry` in
batches and matched with joins, so a 100k-row CSV or a 100k-member platform
never sits in Python memory. Callers run all of this inside a transaction and
drop the staged rows before it ends.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import Lower

from builder.errors import BuildError
from builder.models import (
    Department,
    DepartmentMember,
    Pathway,
    PathwayMember,
    Program,
    ProgramMember,
    StagedEntry,
    UserGroup,
    UserGroupMember,
)
from notifications.models import Platform
from notifications.selectors import platform_members

EMAIL, USERNAME, PLATFORM, CSV = "email", "username", "platform", "csv"
DEPARTMENT, PATHWAY, PROGRAM, USERGROUP = "department", "pathway", "program", "usergroup"
# In the order the context endpoint lists them.
SOURCE_TYPES = (EMAIL, USERNAME, PLATFORM, CSV, DEPARTMENT, PATHWAY, PROGRAM, USERGROUP)
INTEGER_ID_SOURCES = (DEPARTMENT, USERGROUP)
STRING_ID_SOURCES = (PATHWAY, PROGRAM)

# Invalid entries listed in a response; `invalid_count` has the full number.
INVALID_LIST_LIMIT = 1000
STAGE_BATCH = 2000
_LIST_SPLIT = re.compile(r"[,;\s]+")


class SourceError(BuildError):
    """A source that cannot be resolved at all."""


@dataclass
class Source:
    type: str
    data: str = ""
    # CSV sources: the uploaded file and the form field it came in.
    file: object | None = None
    file_field: str = ""
    index: int = 0

    @property
    def label(self) -> str:
        return f"source {self.index + 1} ({self.type})"

    def record(self) -> dict:
        """How the build remembers this source."""
        if self.type == CSV:
            return {"type": CSV, "data": self.file_field, "filename": getattr(self.file, "name", "")}
        return {"type": self.type, "data": self.data}


@dataclass
class Resolved:
    """Who one source reaches."""

    users: QuerySet
    # Addresses matching no member (StagedEntry rows, `value` = lower-cased email).
    addresses: QuerySet | None = None
    invalid_entries: list[str] = field(default_factory=list)
    invalid_count: int = 0
    batches: list[uuid.UUID] = field(default_factory=list)

    def valid_count(self) -> int:
        n = self.users.count()
        if self.addresses is not None:
            n += self.addresses.values("value").distinct().count()
        return n


def source_parse(raw, *, files=None, index: int = 0, csv_ordinal: int = 0) -> Source:
    """Check one `{"type", "data"}` object; CSV sources take their file from `files`.

    A CSV source's `data` may name its upload field; without it the n-th CSV
    source of a request reads `file_<n>` (the first one `file_0`).
    """
    if not isinstance(raw, dict):
        raise SourceError(f"Source {index + 1} must be an object with 'type' and 'data'.")
    kind = raw.get("type")
    if kind not in SOURCE_TYPES:
        raise SourceError(f"Source {index + 1}: unknown type {kind!r}; expected one of {', '.join(SOURCE_TYPES)}.")
    data = raw.get("data")
    source = Source(type=kind, index=index)
    if kind == CSV:
        wanted = str(data).strip() if data not in (None, "") else f"file_{csv_ordinal}"
        upload = (files or {}).get(wanted)
        if upload is None:
            raise SourceError(f"{source.label}: upload the CSV file as multipart form data in the '{wanted}' field.")
        source.file, source.file_field = upload, wanted
        return source
    if isinstance(data, bool) or data is None or (isinstance(data, str) and not data.strip()):
        raise SourceError(f"{source.label}: 'data' is required.")
    if kind in INTEGER_ID_SOURCES:
        try:
            number = int(str(data).strip())
        except ValueError:
            raise SourceError(f"{source.label}: 'data' must be an integer id, not {data!r}.") from None
        source.data = str(number)
    elif isinstance(data, (str, int)):
        source.data = str(data).strip()
    else:
        raise SourceError(f"{source.label}: 'data' must be a string.")
    return source


def source_resolve(*, platform: Platform, source: Source) -> Resolved:
    """Who `source` reaches on `platform`, as querysets (staged rows stay until `staged_drop`)."""
    members = platform_members(platform=platform)
    if source.type == PLATFORM:
        if source.data != platform.key:
            raise SourceError(f"{source.label}: '{source.data}' is not this platform ('{platform.key}').")
        return Resolved(users=members)
    if source.type in (DEPARTMENT, USERGROUP, PROGRAM, PATHWAY):
        return Resolved(users=members.filter(Exists(_group_members(platform=platform, source=source))))
    batch = uuid.uuid4()
    if source.type == USERNAME:
        _stage(batch, _split(source.data))
        entries = StagedEntry.objects.filter(batch=batch)
        unknown = entries.exclude(Exists(members.filter(username=OuterRef("value"))))
        return Resolved(
            users=members.filter(Exists(entries.filter(value=OuterRef("username")))),
            invalid_entries=list(unknown.order_by("pk").values_list("value", flat=True)[:INVALID_LIST_LIMIT]),
            invalid_count=unknown.count(),
            batches=[batch],
        )
    if source.type == EMAIL:
        invalid, invalid_count = _stage_emails(batch, ((None, v) for v in _split(source.data)))
    else:
        invalid, invalid_count = _stage_emails(batch, _csv_emails(source))
    entries = StagedEntry.objects.filter(batch=batch)
    by_email = members.annotate(email_lower=Lower("email"))
    return Resolved(
        users=members.filter(Exists(entries.filter(value=Lower(OuterRef("email"))))),
        addresses=entries.exclude(Exists(by_email.filter(email_lower=OuterRef("value")))),
        invalid_entries=invalid,
        invalid_count=invalid_count,
        batches=[batch],
    )


def staged_drop(batches: Iterable[uuid.UUID]) -> None:
    batches = list(batches)
    if batches:
        StagedEntry.objects.filter(batch__in=batches).delete()


def _group_members(*, platform: Platform, source: Source) -> QuerySet:
    """Memberships (correlated on the outer user) of the department/group/program/pathway named."""
    if source.type == DEPARTMENT:
        group = Department.objects.filter(platform=platform, pk=int(source.data)).first()
        qs = DepartmentMember.objects.filter(department=group, is_active=True)
    elif source.type == USERGROUP:
        group = UserGroup.objects.filter(platform=platform, pk=int(source.data)).first()
        qs = UserGroupMember.objects.filter(group=group, is_active=True)
    elif source.type == PROGRAM:
        group = Program.objects.filter(platform=platform, key=source.data).first()
        qs = ProgramMember.objects.filter(program=group, is_suggested=True)
    else:
        group = Pathway.objects.filter(platform=platform, key=source.data).first()
        qs = PathwayMember.objects.filter(pathway=group, is_suggested=True)
    if group is None:
        raise SourceError(f"{source.label}: {source.type} '{source.data}' does not exist on this platform.")
    return qs.filter(user=OuterRef("pk"))


def _split(data: str) -> list[str]:
    return [v for v in _LIST_SPLIT.split(data) if v]


def _stage(batch: uuid.UUID, values: Iterable[str]) -> int:
    n = 0
    buffer: list[StagedEntry] = []
    for value in values:
        buffer.append(StagedEntry(batch=batch, value=value[:320]))
        if len(buffer) >= STAGE_BATCH:
            StagedEntry.objects.bulk_create(buffer)
            n += len(buffer)
            buffer = []
    if buffer:
        StagedEntry.objects.bulk_create(buffer)
        n += len(buffer)
    return n


def _stage_emails(batch: uuid.UUID, rows: Iterator[tuple[int | None, str]]) -> tuple[list[str], int]:
    """Stage the valid addresses (lower-cased); return the invalid ones and how many there were."""
    invalid: list[str] = []
    invalid_count = 0

    def valid() -> Iterator[str]:
        nonlocal invalid_count
        for line, value in rows:
            try:
                validate_email(value)
            except ValidationError:
                invalid_count += 1
                if len(invalid) < INVALID_LIST_LIMIT:
                    invalid.append(value if value else f"row {line}: no email")
                continue
            yield value.lower()

    _stage(batch, valid())
    return invalid, invalid_count


def _csv_emails(source: Source) -> Iterator[tuple[int, str]]:
    """(line, email) of every data row of an uploaded CSV, read as a stream."""
    upload = source.file
    raw = getattr(upload, "file", upload)
    raw.seek(0)
    # utf-8-sig: spreadsheets save CSV with a byte-order mark.
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")

    def lines() -> Iterator[str]:
        for line in text:
            # Python's csv reader accepts NUL bytes; text never has them, binaries do.
            if "\x00" in line:
                raise csv.Error("line contains NUL")
            yield line

    try:
        reader = csv.reader(lines())
        try:
            header = next(reader, None)
            if header is None:
                raise SourceError(f"{source.label}: the CSV file is empty.")
            names = [name.strip().lower() for name in header]
            if "email" not in names:
                raise SourceError(
                    f"{source.label}: the CSV file must start with a header row that has an 'email' column."
                )
            column = names.index("email")
            for row in reader:
                if not row or not any(cell.strip() for cell in row):
                    continue  # blank line
                yield reader.line_num, (row[column].strip() if len(row) > column else "")
        except UnicodeDecodeError:
            raise SourceError(f"{source.label}: the file is not a CSV file (it is not UTF-8 text).") from None
        except csv.Error as exc:
            raise SourceError(f"{source.label}: the file is not a CSV file ({exc}).") from None
    finally:
        # Leave the upload open for whoever reads it next.
        text.detach()


def insert_select(*, model, columns: list[str], queryset: QuerySet) -> int:
    """INSERT INTO model (columns) SELECT ... skipping rows that hit a unique key; returns rows written.

    The SELECT is the queryset's own SQL, so rows go from table to table
    without passing through Python.
    """
    sql, params = queryset.query.sql_with_params()
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    cols = ", ".join(quote(c) for c in columns)
    if connection.vendor == "sqlite":
        statement = f"INSERT OR IGNORE INTO {table} ({cols}) {sql}"
    else:
        statement = f"INSERT INTO {table} ({cols}) {sql} ON CONFLICT DO NOTHING"
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return max(cursor.rowcount, 0)

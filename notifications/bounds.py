"""Bounds on what a request may ask us to store or look up (README: "Request input bounds").

Every surface checks its inputs against these, so that a value PostgreSQL or
Python cannot hold (a year-10000 time, a 20-digit id, a NUL byte) is a 4xx at
the edge and never a failed write or a row nobody can read back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

# PostgreSQL bigint: ids and offsets beyond this fail in the database.
BIGINT_MAX = 2**63 - 1


def date_horizon(*, now: datetime | None = None) -> datetime:
    """The latest time a send, an alert or a build may be scheduled for."""
    return (now or timezone.now()) + timedelta(days=settings.INPUT_DATE_HORIZON_DAYS)


def horizon_text() -> str:
    days = settings.INPUT_DATE_HORIZON_DAYS
    return f"{days // 365} years" if days % 365 in (0, 1) else f"{days} days"


def as_utc(value: datetime) -> datetime | None:
    """`value` in UTC, or None when UTC cannot hold it (9999-12-31T23:59:59-14:00 is year 10000)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return None


def text_problem(text: str) -> str | None:
    """NUL bytes (PostgreSQL text cannot hold them) and lone surrogates (not encodable as UTF-8)."""
    if "\x00" in text:
        return "strings may not contain NUL (\\u0000) characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "strings may not contain lone surrogates (\\ud800-\\udfff)"
    return None

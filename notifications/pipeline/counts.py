"""Counts of sends, read from their rows by source, never kept in memory.

The front door answers with these; callers that show progress later (an
immediate send's history, a build, a scheduled job) read them by source, and
the builder, which shows every recipient's state, reads `recipient_outcomes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from django.db import connection
from django.db.models import Count, Q, Sum

from notifications.channels import Channel
from notifications.models import DeliveryStatus, Notification
from notifications.pipeline.dispatch import of_sources
from notifications.pipeline.parts import SendResult


def send_counts(*, source: str) -> SendResult:
    """Counts of one send, straight from its rows."""
    return send_counts_many(sources=[source])[source]


def send_counts_many(*, sources: Sequence[str]) -> dict[str, SendResult]:
    """Counts of many sends in one GROUP BY (plus one distinct count per multi-channel send)."""
    results = {source: SendResult(source=source) for source in sources}
    rows = (
        of_sources(Notification.objects.all(), list(results))
        .values("source", "channel", "delivery_status")
        .annotate(
            n=Count("id"),
            us=Sum("units_sent"),
            uf=Sum("units_failed"),
            none=Count("id", filter=Q(units_sent=0, units_failed=0)),
        )
        .order_by()
    )
    for row in rows:
        result = results[row["source"]]
        per = result.per_channel.setdefault(row["channel"], {"sent": 0, "failed": 0, "pending": 0, "suppressed": 0})
        per[row["delivery_status"]] += row["n"]
        if row["delivery_status"] == DeliveryStatus.SENT:
            result.sent += row["n"]
        elif row["delivery_status"] == DeliveryStatus.FAILED:
            result.failed += row["n"]
            result.unreached += row["none"]
        elif row["delivery_status"] == DeliveryStatus.SUPPRESSED:
            result.suppressed += row["n"]
        else:
            # Rows a delivery rule deferred are pending until their time.
            result.pending += row["n"]
        result.units_sent += row["us"] or 0
        result.units_failed += row["uf"] or 0
    for source, result in results.items():
        if len(result.per_channel) <= 1:
            # One channel: one row per recipient (the unique key), no DISTINCT needed.
            result.total_recipients = result.sent + result.failed + result.pending + result.suppressed
        else:
            result.total_recipients = (
                Notification.objects.filter(source=source).values("recipient_key").distinct().order_by().count()
            )
    return results


@dataclass(frozen=True)
class RecipientOutcome:
    """Where one recipient of a send stands: the statuses of its deliveries, and why any failed."""

    statuses: frozenset[str]
    errors: tuple[str, ...]  # "<channel>: <error>" of each failed delivery that says why

    @property
    def sent(self) -> bool:
        return DeliveryStatus.SENT in self.statuses

    @property
    def pending(self) -> bool:
        return DeliveryStatus.PENDING in self.statuses


def recipient_outcomes(*, source: str, keys: Sequence[str]) -> dict[str, RecipientOutcome]:
    """Per recipient key of one send, its deliveries' outcome; keys without a row are left out.

    Costs one probe of the unique key per key and channel, however large the
    send already is (the builder asks chunk after chunk of one source).
    """
    statuses: dict[str, set[str]] = {}
    errors: dict[str, list[str]] = {}
    if connection.vendor == "postgresql":
        rows = _outcome_rows_postgresql(source, list(keys))
    else:
        rows = Notification.objects.filter(source=source, recipient_key__in=list(keys)).values_list(
            "recipient_key", "channel", "delivery_status", "error"
        )
    for key, channel, status, error in rows:
        statuses.setdefault(key, set()).add(status)
        if status == DeliveryStatus.FAILED and error:
            errors.setdefault(key, []).append(f"{channel}: {error}")
    return {key: RecipientOutcome(frozenset(s), tuple(errors.get(key, ()))) for key, s in statuses.items()}


def _outcome_rows_postgresql(source: str, keys: list[str]) -> list[tuple]:
    # `recipient_key IN (...)` beside `source = ...` leaves the channel, the
    # unique key's middle column, open: PostgreSQL then reads every row of the
    # source for each chunk (the planner knows nothing of a source still being
    # written). Joining every (channel, key) pair probes the key exactly.
    if not keys:
        return []
    table = connection.ops.quote_name(Notification._meta.db_table)
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            "SELECT n.recipient_key, n.channel, n.delivery_status, n.error "
            "FROM unnest(%b::text[]) AS c(channel) CROSS JOIN unnest(%b::text[]) AS k(key) "
            f"JOIN {table} AS n ON n.source = %b AND n.channel = c.channel AND n.recipient_key = k.key",
            [list(Channel.values), keys, source],
        )
        return cursor.fetchall()

"""Reads of the core domain. Every queryset starts from a platform and a user."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import QuerySet

from notifications.models import DeliveryStatus, InboxCounter, InboxStatus, Notification, Platform


def inbox_for(*, user, platform: Platform) -> QuerySet[Notification]:
    """The user's inbox on one platform: every notification sent to them, any channel, any status."""
    return Notification.objects.filter(user=user, platform=platform, delivery_status=DeliveryStatus.SENT)


def inbox_visible_for(
    *, user, platform: Platform, limit: int, offset: int = 0, fields: Sequence[str] | None = None
) -> QuerySet[Notification]:
    """One page of the inbox a learner app shows: newest first, dismissed (CANCELLED) rows left out.

    The inbox index is ordered by status, then newest first, so the newest
    `offset + limit` rows are the newest of the UNREAD range merged with the
    newest of the READ range: two short index scans and a sort of at most
    2 x (offset + limit) rows, however many rows the user has. `id` breaks
    the ties of rows one bulk send wrote at the same instant, so pages are stable.
    `fields` loads only those columns (a page of payloads needs few of them).
    """
    order = ("-created_at", "-id")
    base = inbox_for(user=user, platform=platform)
    if fields:
        base = base.only(*fields)
    end = offset + limit
    if not connection.features.supports_slicing_ordering_in_compound:  # SQLite: development sizes
        return base.exclude(status=InboxStatus.CANCELLED).order_by(*order)[offset:end]
    unread = base.filter(status=InboxStatus.UNREAD).order_by(*order)[:end]
    read = base.filter(status=InboxStatus.READ).order_by(*order)[:end]
    return unread.union(read, all=True).order_by(*order)[offset:end]


def inbox_counts(*, user, platform: Platform) -> dict[str, int]:
    """Sent inbox rows per status, from the trigger-maintained counter (one index lookup)."""
    row = InboxCounter.objects.filter(user=user, platform=platform).values_list("unread", "read", "cancelled").first()
    unread, read, cancelled = row or (0, 0, 0)
    return {InboxStatus.UNREAD: unread, InboxStatus.READ: read, InboxStatus.CANCELLED: cancelled}


def inbox_unread_count(*, user, platform: Platform) -> int:
    return inbox_counts(user=user, platform=platform)[InboxStatus.UNREAD]

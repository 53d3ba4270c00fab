"""Reads of the core domain. Every queryset starts from a platform and a user."""

from __future__ import annotations

from django.db.models import QuerySet

from notifications.models import DeliveryStatus, InboxCounter, InboxStatus, Notification, Platform


def inbox_for(*, user, platform: Platform) -> QuerySet[Notification]:
    """The user's inbox on one platform: every notification sent to them, any channel, any status."""
    return Notification.objects.filter(user=user, platform=platform, delivery_status=DeliveryStatus.SENT)


def inbox_visible_for(*, user, platform: Platform) -> QuerySet[Notification]:
    """The inbox a learner app shows, newest first: dismissed (CANCELLED) rows left out.

    Served by the partial index `inbox_user_created`; `id` breaks the ties of
    rows one bulk send wrote at the same instant, so offset pages are stable.
    """
    return inbox_for(user=user, platform=platform).exclude(status=InboxStatus.CANCELLED).order_by("-created_at", "-id")


def inbox_counts(*, user, platform: Platform) -> dict[str, int]:
    """Sent inbox rows per status, from the trigger-maintained counter (one index lookup)."""
    row = InboxCounter.objects.filter(user=user, platform=platform).values_list("unread", "read", "cancelled").first()
    unread, read, cancelled = row or (0, 0, 0)
    return {InboxStatus.UNREAD: unread, InboxStatus.READ: read, InboxStatus.CANCELLED: cancelled}


def inbox_unread_count(*, user, platform: Platform) -> int:
    return inbox_counts(user=user, platform=platform)[InboxStatus.UNREAD]

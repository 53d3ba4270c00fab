"""Reads of the core domain. Every queryset starts from a platform and a user."""

from __future__ import annotations

from django.db.models import QuerySet

from notifications.models import DeliveryStatus, InboxStatus, Notification, Platform


def inbox_for(*, user, platform: Platform) -> QuerySet[Notification]:
    """The user's inbox on one platform: every notification sent to them, any channel."""
    return Notification.objects.filter(user=user, platform=platform, delivery_status=DeliveryStatus.SENT)


def inbox_unread_count(*, user, platform: Platform) -> int:
    return inbox_for(user=user, platform=platform).filter(status=InboxStatus.UNREAD).count()

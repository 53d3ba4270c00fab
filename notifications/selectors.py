"""Reads of the core domain. Every queryset starts from a platform and a user."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import swapper
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from notifications.models import DeliveryStatus, InboxStatus, Notification, Platform, PlatformSMTPSettings


def inbox_for(*, user, platform: Platform) -> QuerySet[Notification]:
    """The user's inbox on one platform: every notification sent to them, any channel."""
    return Notification.objects.filter(user=user, platform=platform, delivery_status=DeliveryStatus.SENT)


def inbox_unread_count(*, user, platform: Platform) -> int:
    return inbox_for(user=user, platform=platform).filter(status=InboxStatus.UNREAD).count()


# IBL list order: UNREAD, then READ, then CANCELLED (the choice values sort
# that way descending), newest first inside each, off the partial index
# `inbox_user_status_created`. The id breaks ties between rows one bulk send
# wrote in the same instant, so pages never repeat or skip a row.
INBOX_ORDER = ("-status", "-created_at", "-id")


def inbox_filtered(
    *,
    user,
    platform: Platform,
    statuses: Sequence[str] | None = None,
    channel: str | None = None,
    exclude_channel: str | None = None,
    created_from: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Notification]:
    """One inbox with the IBL list filters, in list order.

    `statuses=None` means the live inbox, UNREAD and READ: a CANCELLED
    notification is one the user dismissed, shown only when asked for.
    `created_before` is exclusive.
    """
    qs = inbox_for(user=user, platform=platform)
    qs = qs.filter(status__in=statuses if statuses else (InboxStatus.UNREAD, InboxStatus.READ))
    if channel:
        qs = qs.filter(channel=channel)
    if exclude_channel:
        qs = qs.exclude(channel=exclude_channel)
    if created_from is not None:
        qs = qs.filter(created_at__gte=created_from)
    if created_before is not None:
        qs = qs.filter(created_at__lt=created_before)
    return qs.order_by(*INBOX_ORDER)


def platform_member(*, platform: Platform, username: str):
    """The active member of `platform` with this username, or None."""
    User = get_user_model()
    return (
        User.objects.filter(
            username=username, is_active=True, memberships__platform=platform, memberships__is_active=True
        )
        .distinct()
        .first()
    )


def smtp_settings_for(*, platform: Platform) -> PlatformSMTPSettings | None:
    return PlatformSMTPSettings.objects.filter(platform=platform).first()


def push_devices_for(*, user, platform: Platform) -> QuerySet:
    """The user's active push devices for one platform's notifications.

    Devices registered through the IBL API carry the platforms they were
    registered on; a device with no registration at all (created in the admin
    or by fcm-django's own views) serves every platform of its user.
    """
    FCMDevice = swapper.load_model("fcm_django", "FCMDevice")
    return (
        FCMDevice.objects.filter(user=user, active=True)
        .filter(Q(registrations__platform=platform) | Q(registrations__isnull=True))
        .distinct()
    )

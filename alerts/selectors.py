"""Reads of the alerts app. Every query starts from the caller's platform and user."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db.models import F, QuerySet
from django.utils import timezone

from alerts.models import Alert
from notifications.models import Platform

# API ordering names -> model ordering; ties broken by id so pages are stable.
ORDERINGS = {
    "createdAt": ("created_at", "id"),
    "-createdAt": ("-created_at", "-id"),
    "scheduledAt": (F("scheduled_at").asc(nulls_last=True), "id"),
    "-scheduledAt": (F("scheduled_at").desc(nulls_last=True), "-id"),
    "notifyAt": (F("notify_at").asc(nulls_last=True), "id"),
    "-notifyAt": (F("notify_at").desc(nulls_last=True), "-id"),
}


def alerts_of(*, platform: Platform, user) -> QuerySet[Alert]:
    """The caller's alerts that the API may show (not deleted)."""
    return Alert.objects.live().filter(platform=platform, user=user)


def alert_list(
    *,
    platform: Platform,
    user,
    is_read: bool | None = None,
    types: Sequence[str] = (),
    is_event: bool | None = None,
    scheduled_from: datetime | None = None,
    scheduled_to: datetime | None = None,
    archived: bool = False,
    ordering: str = "-createdAt",
) -> QuerySet[Alert]:
    queryset = alerts_of(platform=platform, user=user).filter(archived_at__isnull=not archived)
    if is_read is not None:
        queryset = queryset.filter(is_read=is_read)
    if types:
        queryset = queryset.filter(type__in=types)
    if is_event is not None:
        queryset = queryset.filter(is_event=is_event)
    if scheduled_from is not None:
        queryset = queryset.filter(scheduled_at__gte=scheduled_from)
    if scheduled_to is not None:
        queryset = queryset.filter(scheduled_at__lte=scheduled_to)
    return queryset.order_by(*ORDERINGS[ordering])


def alert_get(*, platform: Platform, user, alert_id: int) -> Alert | None:
    return alerts_of(platform=platform, user=user).filter(pk=alert_id).first()


def alert_unread_count(*, platform: Platform, user) -> int:
    """The badge number: unread alerts in the default (unarchived) list."""
    return alerts_of(platform=platform, user=user).filter(is_read=False, archived_at__isnull=True).count()


def alerts_archivable(*, cutoff: datetime) -> QuerySet[Alert]:
    """Read alerts created before `cutoff` that are not archived yet (the retention task)."""
    return Alert.objects.filter(is_read=True, archived_at__isnull=True, deleted_at__isnull=True, created_at__lt=cutoff)


def upcoming_events(*, now: datetime | None = None) -> QuerySet[Alert]:
    """Events still to come, soonest first (the admin's calendar)."""
    now = now or timezone.now()
    return Alert.objects.live().filter(is_event=True, scheduled_at__gte=now).order_by("scheduled_at", "id")

"""Reads of the core domain. Every queryset starts from a platform and a user."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import NamedTuple

import swapper
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet

from notifications.models import (
    DeliveryStatus,
    InboxCounter,
    InboxStatus,
    Membership,
    Notification,
    Platform,
    PlatformSMTPSettings,
)


def inbox_for(*, user, platform: Platform) -> QuerySet[Notification]:
    """The user's inbox on one platform: every notification sent to them, any channel, any status."""
    return Notification.objects.filter(user=user, platform=platform, delivery_status=DeliveryStatus.SENT)


def inbox_visible_for(
    *,
    user,
    platform: Platform,
    limit: int,
    offset: int = 0,
    fields: Sequence[str] | None = None,
    unread_only: bool = False,
    before: tuple[datetime, object] | None = None,
) -> QuerySet[Notification]:
    """One page of the inbox a learner app shows: newest first, dismissed (CANCELLED) rows left out.

    The inbox index is ordered by status, then newest first, so the newest
    `offset + limit` rows are the newest of the UNREAD range merged with the
    newest of the READ range: two short index scans and a sort of at most
    2 x (offset + limit) rows, however many rows the user has. `id` breaks
    the ties of rows one bulk send wrote at the same instant, so pages are stable.
    `fields` loads only those columns (a page of payloads needs few of them).
    `unread_only` reads the UNREAD range alone. `before` (created_at, id) of
    a notification starts the page after it: a cursor, so rows arriving or
    leaving meanwhile never shift a page (no gaps, no repeats).
    """
    order = ("-created_at", "-id")
    base = inbox_for(user=user, platform=platform)
    if fields:
        base = base.only(*fields)
    if before is not None:
        created_at, pk = before
        # The plain `<=` bounds the index range scan; the OR settles ties.
        base = base.filter(created_at__lte=created_at).filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk)
        )
    end = offset + limit
    if unread_only:
        return base.filter(status=InboxStatus.UNREAD).order_by(*order)[offset:end]
    if not connection.features.supports_slicing_ordering_in_compound:  # SQLite: development sizes
        return base.exclude(status=InboxStatus.CANCELLED).order_by(*order)[offset:end]
    unread = base.filter(status=InboxStatus.UNREAD).order_by(*order)[:end]
    read = base.filter(status=InboxStatus.READ).order_by(*order)[:end]
    return unread.union(read, all=True).order_by(*order)[offset:end]


# The request path's inbox reads are plain SQL: they are the whole work of the
# unread badge and the first page, and the ORM's building of these queries
# (filters, the union, the compiler) cost more than PostgreSQL's running them
# (bench/inbox_http.py). The SQL is the same on every call but for its parameters.
_COUNTS_SQL = (
    f'SELECT "unread", "read", "cancelled" FROM "{InboxCounter._meta.db_table}" '
    'WHERE "user_id" = %s AND "platform_id" = %s'
)


def inbox_counts(*, user, platform: Platform) -> dict[str, int]:
    """Sent inbox rows per status, from the trigger-maintained counter (one index lookup)."""
    with connection.cursor() as cursor:
        cursor.execute(_COUNTS_SQL, [user.pk, platform.pk])
        row = cursor.fetchone()
    unread, read, cancelled = row or (0, 0, 0)
    return {InboxStatus.UNREAD: unread, InboxStatus.READ: read, InboxStatus.CANCELLED: cancelled}


class InboxRow(NamedTuple):
    """A notification of an inbox page: the columns a payload needs (`realtime_payload.PAYLOAD_FIELDS`)."""

    id: uuid.UUID
    user_id: int
    notification_type: str
    level: str
    channel: str
    title: str
    body: str
    status: str
    created_at: datetime


@cache
def _page_sql(*, unread_only: bool, before: bool) -> str:
    """`inbox_visible_for` with the counter's row, as one PostgreSQL statement."""
    columns = ", ".join(f'"{name}"' for name in InboxRow._fields)
    after = " AND created_at <= %(at)s AND (created_at < %(at)s OR (created_at = %(at)s AND id < %(pk)s))"
    ranges = [
        f'(SELECT {columns} FROM "{Notification._meta.db_table}" WHERE user_id = %(user)s '
        f"AND platform_id = %(platform)s AND delivery_status = %(sent)s AND status = %({status})s"
        f"{after if before else ''} ORDER BY created_at DESC, id DESC LIMIT %(end)s)"
        for status in (("unread",) if unread_only else ("unread", "read"))
    ]
    page = (
        f"SELECT * FROM ({' UNION ALL '.join(ranges)}) AS r "
        "ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s"
    )
    # The counter joins a one-row relation, so an empty page still brings the counts.
    return (
        f'WITH page AS ({page}) SELECT c."unread", c."read", c."cancelled", p.* FROM (SELECT 1) AS one '
        f'LEFT JOIN "{InboxCounter._meta.db_table}" AS c ON c.user_id = %(user)s AND c.platform_id = %(platform)s '
        "LEFT JOIN page AS p ON true ORDER BY p.created_at DESC, p.id DESC"
    )


def inbox_page(
    *,
    user,
    platform: Platform,
    limit: int,
    offset: int = 0,
    unread_only: bool = False,
    before: tuple[datetime, object] | None = None,
) -> tuple[list[InboxRow], dict[str, int]]:
    """One page of `inbox_visible_for` (same rows, same order) and `inbox_counts`, in one statement.

    What the /api/v1 inbox list serves. Elsewhere than PostgreSQL (SQLite:
    development sizes) it runs the two selectors.
    """
    if not connection.features.supports_slicing_ordering_in_compound:
        page = inbox_visible_for(
            user=user, platform=platform, limit=limit, offset=offset, unread_only=unread_only, before=before
        )
        rows = [InboxRow(*(getattr(n, name) for name in InboxRow._fields)) for n in page.only(*InboxRow._fields)]
        return rows, inbox_counts(user=user, platform=platform)
    at, pk = before if before is not None else (None, None)
    params = {
        "user": user.pk,
        "platform": platform.pk,
        "sent": DeliveryStatus.SENT,
        "unread": InboxStatus.UNREAD,
        "read": InboxStatus.READ,
        "end": offset + limit,
        "limit": limit,
        "offset": offset,
        "at": at,
        "pk": pk,
    }
    with connection.cursor() as cursor:
        cursor.execute(_page_sql(unread_only=unread_only, before=before is not None), params)
        found = cursor.fetchall()
    unread, read, cancelled = found[0][:3]
    counts = {InboxStatus.UNREAD: unread or 0, InboxStatus.READ: read or 0, InboxStatus.CANCELLED: cancelled or 0}
    return [InboxRow(*row[3:]) for row in found if row[3] is not None], counts


def inbox_unread_count(*, user, platform: Platform) -> int:
    return inbox_counts(user=user, platform=platform)[InboxStatus.UNREAD]


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


def platform_members(*, platform: Platform, role: str | None = None, admin: bool | None = None) -> QuerySet:
    """Active users with an active membership of `platform`: everyone a send may reach there.

    `role` keeps members holding that role on this platform; `admin` keeps its
    administrators (True) or everyone else (False). The membership is matched
    in an EXISTS, so a user is never repeated and the caller may add any filter.
    """
    memberships = Membership.objects.filter(user=OuterRef("pk"), platform=platform, is_active=True)
    if role is not None:
        memberships = memberships.filter(role=role)
    if admin is not None:
        memberships = memberships.filter(is_platform_admin=admin)
    return get_user_model().objects.filter(Exists(memberships), is_active=True)


def platform_member(*, platform: Platform, username: str):
    """The active member of `platform` with this username, or None."""
    return platform_members(platform=platform).filter(username=username).first()


def platform_member_by(*, platform: Platform, user_id: int | None = None, username: str | None = None):
    """The active member of `platform` with this id or username, or None."""
    users = platform_members(platform=platform)
    return (users.filter(pk=user_id) if user_id is not None else users.filter(username=username)).first()


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


def push_devices_by_recipient(*, recipients: set[tuple[int, int]]) -> dict[tuple[int, int], list]:
    """`push_devices_for` for many (user id, platform id) pairs at once, in two queries.

    A push backend's batch holds many users, possibly of several platforms;
    each pair gets its user's active devices, id order, that serve that platform.
    """
    from notifications.models import DeviceRegistration

    FCMDevice = swapper.load_model("fcm_django", "FCMDevice")
    by_user: dict[int, list] = {}
    for device in FCMDevice.objects.filter(user_id__in={u for u, _ in recipients}, active=True).order_by("id"):
        by_user.setdefault(device.user_id, []).append(device)
    served: dict[int, set[int]] = {}
    registrations = DeviceRegistration.objects.filter(device__user_id__in=by_user, device__active=True)
    for device_id, platform_id in registrations.values_list("device_id", "platform_id"):
        served.setdefault(device_id, set()).add(platform_id)
    return {
        (user_id, platform_id): [
            d for d in by_user.get(user_id, []) if d.pk not in served or platform_id in served[d.pk]
        ]
        for user_id, platform_id in recipients
    }

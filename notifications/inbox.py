"""Writes of the inbox: the only place a notification's inbox status changes.

Lifecycle (IBL §2, §12): a notification arrives UNREAD; UNREAD and READ turn
into each other; either becomes CANCELLED (dismissed), and CANCELLED is
terminal. Every change moves `updated_at` and keeps `read_at` honest (set on
READ, cleared on UNREAD, kept on CANCELLED). Anything that keeps derived state
about the inbox (an unread counter, a live badge) hooks in here.

The functions take the inbox owner and the platform and touch nothing outside
`selectors.inbox_for(user, platform)`, so ids of another user's or another
platform's notifications behave exactly like ids that do not exist.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from notifications import lifecycle, selectors
from notifications.models import DeliveryStatus, InboxCounter, InboxStatus, Notification, Platform

logger = logging.getLogger(__name__)


def _announce(*, user, platform: Platform, ids: Iterable[uuid.UUID] | None, status: str) -> None:
    """After commit, tell the user's open sockets what changed and the new unread count.

    This keeps every open inbox (tabs, devices, the embedded component) in step
    with a change made anywhere. Best effort like CREATED_NOTIFICATION: a lost
    message leaves a badge stale until the client's next fetch, never the data.
    """
    id_list = None if ids is None else [str(i) for i in ids]

    def send():
        from notifications.realtime import groups_send_sync, inbox_changed_event, user_group

        try:
            unread = selectors.inbox_unread_count(user=user, platform=platform)
            event = inbox_changed_event(
                platform_id=platform.pk, platform_key=platform.key, ids=id_list, status=status, unread=unread
            )
            groups_send_sync([(user_group(user.pk), event)])
        except Exception:
            logger.exception("announcing an inbox change failed")

    transaction.on_commit(send)


class NotificationNotFound(Exception):
    """None of, or not all of, the given notifications are in this inbox."""


class StatusChangeNotAllowed(Exception):
    """A change the lifecycle forbids: away from CANCELLED."""

    def __init__(self, notification_ids: list[uuid.UUID], status: str):
        self.notification_ids = notification_ids
        self.status = status
        ids = ", ".join(str(i) for i in notification_ids)
        noun = "Notification" if len(notification_ids) == 1 else "Notifications"
        super().__init__(f"{noun} {ids} cannot change from CANCELLED to {status}: cancelled notifications are final")


def _read_announce(*, user, platform: Platform, ids: list) -> None:
    """`notification.read` for each notification that became READ, after commit."""
    payloads = [{"notification_id": str(pk), "user_id": str(user.pk)} for pk in ids]
    transaction.on_commit(
        lambda: lifecycle.announce_many(lifecycle.notification_read, platform_id=platform.pk, payloads=payloads)
    )


def _status_update(queryset, status: str, now, *, user=None, platform: Platform | None = None) -> int:
    """One UPDATE; rows already in `status` are left alone (and keep their updated_at).

    Given the inbox's `user` and `platform`, a change to READ is announced
    (`notification.read`) when anyone listens; only then are the ids read first.
    """
    if (
        status == InboxStatus.READ
        and platform is not None
        and lifecycle.wanted(lifecycle.notification_read, platform_id=platform.pk)
    ):
        with transaction.atomic():
            ids = list(
                queryset.exclude(status__in=[InboxStatus.READ, InboxStatus.CANCELLED])
                .select_for_update()
                .values_list("id", flat=True)
            )
            changed = _status_update(Notification.objects.filter(id__in=ids), status, now) if ids else 0
            if ids:
                _read_announce(user=user, platform=platform, ids=ids)
        return changed
    fields = {"status": status, "updated_at": now}
    if status == InboxStatus.READ:
        fields["read_at"] = now
    elif status == InboxStatus.UNREAD:
        fields["read_at"] = None
    queryset = queryset.exclude(status=status)
    if status != InboxStatus.CANCELLED:
        # Terminal even against a concurrent request that cancelled the row
        # after we checked: the condition travels with the UPDATE itself.
        queryset = queryset.exclude(status=InboxStatus.CANCELLED)
    return queryset.update(**fields)


def inbox_status_set(*, user, platform: Platform, ids: Iterable[uuid.UUID], status: str) -> int:
    """Set `status` on the given notifications of one inbox; all or nothing.

    Raises NotificationNotFound when any id is not in the inbox and
    StatusChangeNotAllowed when any of them is CANCELLED and `status` is not.
    Returns how many rows changed (rows already in `status` do not count).
    """
    wanted = set(ids)
    if status not in InboxStatus.values:
        raise ValueError(f"unknown inbox status {status!r}")
    inbox = selectors.inbox_for(user=user, platform=platform)
    current = dict(inbox.filter(id__in=wanted).values_list("id", "status"))
    if len(current) != len(wanted):
        raise NotificationNotFound()
    if status != InboxStatus.CANCELLED:
        stuck = sorted((i for i, s in current.items() if s == InboxStatus.CANCELLED), key=str)
        if stuck:
            raise StatusChangeNotAllowed(stuck, status)
    changed = _status_update(inbox.filter(id__in=wanted), status, timezone.now(), user=user, platform=platform)
    if changed:
        _announce(user=user, platform=platform, ids=sorted(wanted, key=str), status=status)
    return changed


def inbox_bulk_update(*, user, platform: Platform, status: str) -> int:
    """Set `status` on every notification of the inbox.

    CANCELLED ones stay cancelled when the new status is READ or UNREAD (the
    lifecycle is terminal there, and a bulk "mark all read" must not fail
    because the user once dismissed something). Raises NotificationNotFound
    when the inbox is empty. Returns how many rows changed.
    """
    if status not in InboxStatus.values:
        raise ValueError(f"unknown inbox status {status!r}")
    inbox = selectors.inbox_for(user=user, platform=platform)
    if not inbox.exists():
        raise NotificationNotFound()
    changed = _status_update(inbox, status, timezone.now(), user=user, platform=platform)
    if changed:
        _announce(user=user, platform=platform, ids=None, status=status)
    return changed


def inbox_mark_all_read(*, user, platform: Platform, ids: Iterable[uuid.UUID] | None = None) -> int:
    """Mark the unread notifications (all, or those among `ids`) as read; how many changed.

    Ids that are not unread notifications of this inbox are skipped: the
    result counts only what was marked, and says nothing about other ids.
    """
    qs = selectors.inbox_for(user=user, platform=platform).filter(status=InboxStatus.UNREAD)
    if ids is not None:
        qs = qs.filter(id__in=set(ids))
    changed = _status_update(qs, InboxStatus.READ, timezone.now(), user=user, platform=platform)
    if changed:
        # "All unread are now read" holds for the listed ids too: clients mark
        # what they hold among `ids`, or everything when no ids were given.
        _announce(user=user, platform=platform, ids=None if ids is None else list(ids), status=InboxStatus.READ)
    return changed


def inbox_delete(*, user, platform: Platform, notification_id: uuid.UUID) -> None:
    """Remove one notification from the inbox for good.

    The row is also the delivery record whose unique key keeps a retried send
    from delivering again, so it is not dropped: it leaves the inbox (no
    user), loses its content, and stays as an anonymous receipt (source,
    channel, recipient key, delivery status). Neither surface ever shows it
    again and nothing of what it said remains.
    Raises NotificationNotFound.
    """
    inbox = selectors.inbox_for(user=user, platform=platform)
    changed = inbox.filter(id=notification_id).update(
        user=None,
        address="",
        title="",
        body="",
        html="",
        short_message="",
        context={},
        data={},
        image_url="",
        updated_at=timezone.now(),
    )
    if not changed:
        raise NotificationNotFound()
    _announce(user=user, platform=platform, ids=[notification_id], status=InboxStatus.CANCELLED)


def inbox_counters_rebuild(*, platform: Platform | None = None, user=None) -> int:
    """Recount InboxCounter rows from the notifications (repair after TRUNCATE or a restore)."""
    rows = Notification.objects.filter(delivery_status=DeliveryStatus.SENT, user__isnull=False)
    counters = InboxCounter.objects.all()
    if platform is not None:
        rows, counters = rows.filter(platform=platform), counters.filter(platform=platform)
    if user is not None:
        rows, counters = rows.filter(user=user), counters.filter(user=user)
    totals = rows.values("user_id", "platform_id").annotate(
        unread=Count("id", filter=Q(status=InboxStatus.UNREAD)),
        read=Count("id", filter=Q(status=InboxStatus.READ)),
        cancelled=Count("id", filter=Q(status=InboxStatus.CANCELLED)),
    )
    with transaction.atomic():
        counters.delete()
        InboxCounter.objects.bulk_create(
            [
                InboxCounter(
                    user_id=t["user_id"],
                    platform_id=t["platform_id"],
                    unread=t["unread"],
                    read=t["read"],
                    cancelled=t["cancelled"],
                )
                for t in totals.order_by()
            ]
        )
    return len(totals)

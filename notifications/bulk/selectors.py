"""Reads of bulk sends and scheduled jobs. Every queryset starts from a platform."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from notifications.bulk.inputs import Targeting
from notifications.models import Notification, Platform, ScheduledChannel, ScheduledNotification
from notifications.services import Recipient


def target_users(*, platform: Platform, targeting: Targeting) -> QuerySet:
    """Active members of `platform` named by id or holding the role; other platforms' users are not found."""
    if not targeting.user_ids and not targeting.role:
        return get_user_model().objects.none()
    who = Q()
    if targeting.user_ids:
        who |= Q(pk__in=targeting.user_ids)
    if targeting.role:
        who |= Q(role=targeting.role)
    # One membership per (platform, user): the join cannot repeat a user.
    return get_user_model().objects.filter(
        who, is_active=True, memberships__platform=platform, memberships__is_active=True
    )


def recipients_resolve(*, platform: Platform, channel: str, targeting: Targeting) -> tuple[list[Recipient], int]:
    """The union of targeted users and direct addresses, de-duplicated.

    A direct phone or email that belongs to a targeted user is that user, so
    nobody gets the same SMS or email twice. Returns (recipients, user count).
    """
    users = target_users(platform=platform, targeting=targeting)
    address_field = {ScheduledChannel.SMS: "phone_number", ScheduledChannel.EMAIL: "email"}.get(channel)
    if address_field:
        rows = list(users.order_by("pk").values_list("pk", address_field))
    else:
        rows = [(pk, "") for pk in users.order_by("pk").values_list("pk", flat=True)]
    recipients = [Recipient(user_id=pk) for pk, _ in rows]
    taken = {addr.lower() for _, addr in rows if addr}
    for address in (*targeting.phones, *targeting.emails):
        if address.lower() not in taken:
            taken.add(address.lower())
            recipients.append(Recipient(address=address))
    return recipients, len(rows)


def targeting_reaches_anyone(*, platform: Platform, targeting: Targeting) -> bool:
    if targeting.phones or targeting.emails:
        return True
    return target_users(platform=platform, targeting=targeting).exists()


def job_targeting(job: ScheduledNotification) -> Targeting:
    raw = job.target_raw or {}
    return Targeting(
        user_ids=tuple(job.target_user_ids or ()),
        role=job.target_role,
        phones=tuple(raw.get("phones") or ()),
        emails=tuple(raw.get("emails") or ()),
    )


def scheduled_for(*, platform: Platform) -> QuerySet[ScheduledNotification]:
    return ScheduledNotification.objects.filter(platform=platform)


def scheduled_list(
    *,
    platform: Platform,
    status: str = "",
    channel: str = "",
    after: datetime | None = None,
    before: datetime | None = None,
) -> QuerySet[ScheduledNotification]:
    qs = scheduled_for(platform=platform)
    if status:
        qs = qs.filter(status=status)
    if channel:
        qs = qs.filter(channel=channel)
    if after is not None:
        qs = qs.filter(scheduled_at__gte=after)
    if before is not None:
        qs = qs.filter(scheduled_at__lte=before)
    return qs.order_by("-scheduled_at", "-id")


def job_deliveries(*, job: ScheduledNotification, status: str = "") -> QuerySet[Notification]:
    """The per-recipient delivery records of one job."""
    qs = Notification.objects.filter(source=job.source, platform_id=job.platform_id)
    if status:
        qs = qs.filter(delivery_status=status)
    return qs.order_by("created_at", "id")


def latest_delivery_error(*, source: str) -> str:
    return (
        Notification.objects.filter(source=source)
        .exclude(error="")
        .order_by("-updated_at")
        .values_list("error", flat=True)
        .first()
        or ""
    )

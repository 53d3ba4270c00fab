"""Reads of bulk sends and scheduled jobs. Every queryset starts from a platform."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from notifications.bulk_scheduled.inputs import Targeting
from notifications.models import Notification, Platform, ScheduledChannel, ScheduledNotification
from notifications.pipeline import Recipient
from notifications.selectors import platform_members


def target_users(*, platform: Platform, targeting: Targeting) -> QuerySet:
    """Active members of `platform` named by id or holding the role there; other platforms' users are not found.

    The role is the membership's on this platform: the same user may hold another elsewhere.
    """
    if not targeting.user_ids and not targeting.role:
        return get_user_model().objects.none()
    if not targeting.role:
        return platform_members(platform=platform).filter(pk__in=targeting.user_ids)
    holders = platform_members(platform=platform, role=targeting.role)
    if not targeting.user_ids:
        return holders
    # A UNION, not an OR of two EXISTS, which PostgreSQL can only answer by
    # reading every user; each half uses its own index.
    return holders.union(platform_members(platform=platform).filter(pk__in=targeting.user_ids))


def recipients_resolve(*, platform: Platform, channel: str, targeting: Targeting) -> tuple[list[Recipient], int]:
    """The union of targeted users and direct addresses, de-duplicated.

    A direct phone or email that belongs to a targeted user is that user, so
    nobody gets the same SMS or email twice. Returns (recipients, user count).
    """
    return recipients_resolve_many(targets=[(platform, channel, targeting)])[0]


def recipients_resolve_many(*, targets: Sequence[tuple[Platform, str, Targeting]]) -> list[tuple[list[Recipient], int]]:
    """`recipients_resolve` for many (platform, channel, targeting) at once, in the same order.

    One query per platform for every user named by id, one per (platform,
    role): a batch of scheduled jobs falling due together resolves in a
    couple of queries instead of one each.
    """
    contacts: dict[int, tuple[str, str]] = {}  # user id -> (email, phone)
    named: dict[int, set[int]] = {}  # platform id -> its members among the ids asked for
    by_role: dict[tuple[int, str], list[int]] = {}
    ids_of: dict[int, set[int]] = {}
    platforms: dict[int, Platform] = {}
    for platform, _, targeting in targets:
        platforms[platform.pk] = platform
        ids_of.setdefault(platform.pk, set()).update(targeting.user_ids)
        if targeting.role:
            by_role.setdefault((platform.pk, targeting.role), [])

    def load(platform: Platform, targeting: Targeting) -> list[int]:
        rows = target_users(platform=platform, targeting=targeting).values_list("pk", "email", "phone_number")
        contacts.update((pk, (email, phone)) for pk, email, phone in rows)
        return [pk for pk, _, _ in rows]

    for platform_id, ids in ids_of.items():
        if ids:
            named[platform_id] = set(load(platforms[platform_id], Targeting(user_ids=tuple(ids))))
    for platform_id, role in by_role:
        by_role[platform_id, role] = load(platforms[platform_id], Targeting(role=role))

    results = []
    for platform, channel, targeting in targets:
        pks = named.get(platform.pk, set()).intersection(targeting.user_ids)
        if targeting.role:
            pks.update(by_role[platform.pk, targeting.role])
        # Which of a user's (email, phone) a direct address of this channel would duplicate.
        slot = {ScheduledChannel.EMAIL: 0, ScheduledChannel.SMS: 1}.get(channel)
        ordered = sorted(pks)
        recipients = [Recipient(user_id=pk) for pk in ordered]
        taken = set()
        if slot is not None:
            taken = {contacts[pk][slot].lower() for pk in ordered if contacts[pk][slot]}
        for direct in (*targeting.phones, *targeting.emails):
            if direct.lower() not in taken:
                taken.add(direct.lower())
                recipients.append(Recipient(address=direct))
        results.append((recipients, len(ordered)))
    return results


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

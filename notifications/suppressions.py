"""A platform's suppression list: who it no longer sends to, why, and lifting entries.

Entries come from receipts (a hard bounce, a complaint, an unsubscribe at the
provider, an SMS "invalid number" report: `notifications.receipts`) and from
the one-click unsubscribe link (`templates_app`, for the link's one type). The
front door consults the list when it writes rows: a suppressed recipient's row
is written `suppressed` with rule `suppression_list` and never sent, so it is
counted and visible like any other delivery.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from notifications.channels import Channel
from notifications.errors import NotFound
from notifications.models import Platform, Suppression
from notifications.phones import normalize as normalize_phone


def address_normalize(*, channel: str, address: str) -> str:
    """An address as the list keeps it: email lower-cased, phone numbers in E.164 when they parse."""
    address = (address or "").strip()
    if channel == Channel.SMS:
        return normalize_phone(address) or address
    return address.lower()


def suppression_add(
    *,
    platform_id: int,
    channel: str,
    address: str,
    reason: str,
    source: str,
    notification_type: str = "",
    detail: str = "",
    notification_id=None,
) -> tuple[Suppression, bool]:
    """Put `address` on the platform's list for `channel`; returns (entry, created).

    Idempotent: an address already listed keeps its first entry (its reason
    and source say what put it there first).
    """
    key = {
        "platform_id": platform_id,
        "channel": channel,
        "address": address_normalize(channel=channel, address=address),
        "notification_type": notification_type,
    }
    fields = {"reason": reason, "source": source[:60], "detail": detail[:1000], "notification_id": notification_id}
    try:
        with transaction.atomic():
            return Suppression.objects.get_or_create(**key, defaults=fields)
    except IntegrityError:  # a concurrent receipt listed it between the get and the create
        return Suppression.objects.get(**key), False


def suppressions_for(
    *, platform: Platform, channel: str = "", address: str = "", reason: str = ""
) -> QuerySet[Suppression]:
    """The platform's entries, newest first, narrowed by any of the filters given."""
    qs = Suppression.objects.filter(platform=platform)
    if channel:
        qs = qs.filter(channel=channel)
    if address:
        qs = qs.filter(address__icontains=address.strip())
    if reason:
        qs = qs.filter(reason=reason)
    return qs.order_by("-created_at", "-id")


def suppression_get(*, platform: Platform, suppression_id: int) -> Suppression:
    entry = Suppression.objects.filter(platform=platform, pk=suppression_id).first()
    if entry is None:
        raise NotFound("Suppression not found.")
    return entry


def suppression_lift(*, platform: Platform, suppression_id: int) -> None:
    """Take an entry off the list: the address gets that channel's sends again."""
    suppression_get(platform=platform, suppression_id=suppression_id).delete()


def unsubscribe_lift(*, platform_id: int, address: str, notification_type: str) -> int:
    """Drop the unsubscribe-link entry of one type (the user switched the type back on)."""
    deleted, _ = Suppression.objects.filter(
        platform_id=platform_id,
        channel=Channel.EMAIL,
        address=address_normalize(channel=Channel.EMAIL, address=address),
        reason="unsubscribed",
        notification_type=notification_type,
    ).delete()
    return deleted


def suppressed_rows(*, platform_id: int, rows: Iterable[tuple[str, str, str]]) -> set[int]:
    """Indexes of `rows` ((channel, address, notification_type), ...) whose address the platform suppresses.

    One query for the lot: the addresses of the channels that have a list
    (email, SMS) against the platform's entries for every type or the row's type.
    """
    wanted: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for index, (channel, address, notification_type) in enumerate(rows):
        if channel not in (Channel.EMAIL, Channel.SMS) or not address:
            continue
        key = (channel, address_normalize(channel=channel, address=address))
        wanted.setdefault(key, []).append((index, notification_type))
    if not wanted:
        return set()
    condition = Q()
    for channel in {c for c, _ in wanted}:
        condition |= Q(channel=channel, address__in=[a for c, a in wanted if c == channel])
    listed: dict[tuple[str, str], set[str]] = {}
    entries = Suppression.objects.filter(condition, platform_id=platform_id)
    for channel, address, notification_type in entries.values_list("channel", "address", "notification_type"):
        listed.setdefault((channel, address), set()).add(notification_type)
    hits = set()
    for key, types in listed.items():
        for index, notification_type in wanted.get(key, ()):
            if "" in types or notification_type in types:
                hits.add(index)
    return hits

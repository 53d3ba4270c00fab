"""A platform's suppression list: who it no longer sends to, why, lifting entries, and the delivery rule.

Entries come from receipts (a hard bounce, a complaint, an unsubscribe at the
provider, an SMS "invalid number" report: `notifications.receipts`), from
providers refusing an address at send time (dispatch: `refusals_suppress`) and
from the one-click unsubscribe link (`templates_app`, for the link's one type). The
front door consults the list when it writes rows, through the delivery rule
registered here (`notifications.pipeline.rules`): a suppressed recipient's row
is written `suppressed` with rule `suppression_list` and never sent, so it is
counted and visible like any other delivery.

Critical deliveries (`Row.critical`) still skip addresses that bounced, were
complained about or are invalid (they cannot be delivered, or must not be);
only an unsubscribe lets critical mail through.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from notifications.channels import Channel
from notifications.errors import NotFound
from notifications.models import DeliveryRule, Platform, Suppression, SuppressionReason
from notifications.phones import normalize as normalize_phone
from notifications.pipeline import rules


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


class AddressRefusal(NamedTuple):
    """A provider refused a delivery's address at send time, for good (`Result.address_refused`)."""

    platform_id: int
    channel: str
    address: str
    provider: str
    detail: str
    notification_id: object


# What a refusal at send time lists the address as: the reason a receipt saying the same gives.
REFUSAL_REASONS = {Channel.EMAIL: SuppressionReason.HARD_BOUNCE, Channel.SMS: SuppressionReason.INVALID_NUMBER}


def refusals_suppress(*, refusals: Iterable[AddressRefusal]) -> None:
    """List every refused address on its delivery's platform, in one INSERT ... ON CONFLICT DO NOTHING.

    A batch answered again (its lease ran out and another dispatcher sent it
    too) or an address already listed (by a receipt, an earlier batch, two
    sends in one batch) adds nothing: the first entry stays, as with
    `suppression_add`.
    """
    entries: dict[tuple, Suppression] = {}
    for refusal in refusals:
        reason = REFUSAL_REASONS.get(refusal.channel)
        address = address_normalize(channel=refusal.channel, address=refusal.address)
        if reason is None or not address:
            continue
        key = (refusal.platform_id, refusal.channel, address)
        entries.setdefault(
            key,
            Suppression(
                platform_id=refusal.platform_id,
                channel=refusal.channel,
                address=address,
                notification_type="",
                reason=reason,
                source=refusal.provider[:60],
                detail=refusal.detail[:1000],
                notification_id=refusal.notification_id,
            ),
        )
    if not entries:
        return
    # A savepoint when the caller is in a transaction: a failure here leaves the caller's work usable.
    with transaction.atomic():
        Suppression.objects.bulk_create(entries.values(), ignore_conflicts=True)
    # A bulk insert sends no post_save: drop the cached "no entries" answers here.
    for platform_id in {platform_id for platform_id, _, _ in entries}:
        _listed_forget(platform_id)


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


def suppressed_rows(*, platform_id: int, rows: Iterable[tuple[str, str, str, bool]]) -> set[int]:
    """Indexes of `rows` ((channel, address, notification_type, critical), ...) the platform's list holds back.

    One query for the lot: the addresses of the channels that have a list
    (email, SMS) against the platform's entries for every type or the row's
    type. A critical row passes an unsubscribe, nothing else.
    """
    wanted: dict[tuple[str, str], list[tuple[int, str, bool]]] = {}
    for index, (channel, address, notification_type, critical) in enumerate(rows):
        if channel not in (Channel.EMAIL, Channel.SMS) or not address:
            continue
        key = (channel, address_normalize(channel=channel, address=address))
        wanted.setdefault(key, []).append((index, notification_type, critical))
    if not wanted:
        return set()
    condition = Q()
    for channel in {c for c, _ in wanted}:
        condition |= Q(channel=channel, address__in=[a for c, a in wanted if c == channel])
    # (channel, address) -> {notification type or "": reason}
    listed: dict[tuple[str, str], dict[str, str]] = {}
    entries = Suppression.objects.filter(condition, platform_id=platform_id)
    for channel, address, notification_type, reason in entries.values_list(
        "channel", "address", "notification_type", "reason"
    ):
        listed.setdefault((channel, address), {})[notification_type] = reason
    hits = set()
    for key, types in listed.items():
        for index, notification_type, critical in wanted.get(key, ()):
            reasons = [types[t] for t in ("", notification_type) if t in types]
            if reasons and not (critical and all(r == SuppressionReason.UNSUBSCRIBED for r in reasons)):
                hits.add(index)
    return hits


# -- the delivery rule ---------------------------------------------------------------

_LISTED_KEY = "notify:suppressions:listed:{}"
_LISTED_SECONDS = 300


def platform_has_suppressions(*, platform_id: int) -> bool:
    """Whether the platform's list has any entry: a cache read per chunk, so a platform without one pays nothing.

    Every write of an entry drops the cached answer (`suppressions_changed`, connected to the model's signals;
    `refusals_suppress` for its bulk insert).
    """
    key = _LISTED_KEY.format(platform_id)
    listed = cache.get(key)
    if listed is None:
        listed = Suppression.objects.filter(platform_id=platform_id).exists()
        cache.set(key, listed, _LISTED_SECONDS)
    return listed


def suppressions_changed(sender, instance, **kwargs) -> None:
    _listed_forget(instance.platform_id)


def _listed_forget(platform_id: int) -> None:
    key = _LISTED_KEY.format(platform_id)
    cache.delete(key)
    # Again once committed: a send in another process may have cached "no entries" in between.
    transaction.on_commit(lambda: cache.delete(key))


def rule_applies(*, platform, channels) -> bool:
    return any(c in (Channel.EMAIL, Channel.SMS) for c in channels) and platform_has_suppressions(platform_id=platform)


def rule_decide(*, platform, rows, now) -> dict:
    """The suppression-list rule: rows whose address is listed are written `suppressed`, never sent."""
    rows = [r for r in rows if r.channel in (Channel.EMAIL, Channel.SMS)]
    if not rows:
        return {}
    user_ids = {r.user_id for r in rows if r.user_id is not None}
    contacts = (
        {pk: (email, phone) for pk, email, phone in _users(user_ids).values_list("pk", "email", "phone_number")}
        if user_ids
        else {}
    )
    candidates = []
    for r in rows:
        if r.user_id is not None:
            email, phone = contacts.get(r.user_id, ("", ""))
            address = email if r.channel == Channel.EMAIL else phone
        else:
            address = r.recipient_key.partition(":")[2]
        candidates.append((r.channel, address, r.notification_type, r.critical))
    hits = suppressed_rows(platform_id=platform, rows=candidates)
    decision = rules.Decision.suppress(DeliveryRule.SUPPRESSION_LIST)
    return {rows[i].index: decision for i in hits}


def _users(user_ids):
    return get_user_model().objects.filter(pk__in=user_ids)


SUPPRESSION_RULE = rules.Rule(name="suppression_list", decide=rule_decide, applies=rule_applies, order=10)

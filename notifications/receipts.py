"""Receipts in: what a provider reports about a delivery after accepting it.

Provider webhooks (anymail's tracking webhooks for email,
`notifications.receipt_webhooks`) turn their payloads into `ReceiptEvent`s and
hand them here. Each event updates the `DeliveryReceipt` of the one delivery
row whose provider and provider message id it names, and nothing else, so a
receipt can never touch another platform's rows. Recording is idempotent
(providers re-post until answered): milestones keep their first time, the
status follows the newest event by the provider's timestamp, and the lifecycle
signals and suppression-list entries follow only the first time a milestone
is reached.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import transaction
from django.utils import timezone

from notifications import lifecycle
from notifications.models import DeliveryReceipt, Notification, ProviderStatus, SuppressionReason
from notifications.suppressions import address_normalize, suppression_add

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceiptEvent:
    """One provider report, in our terms."""

    status: str  # a ProviderStatus value
    message_id: str
    recipient: str = ""
    timestamp: datetime | None = None
    detail: str = ""
    # Bounces: True when permanent (a hard bounce), False for a soft one the provider keeps trying.
    permanent: bool = True
    # The provider refused to send because it already knows the address is bad (anymail's reject_reason).
    reject_reason: str = ""


# The status -> the milestone column it sets the first time.
MILESTONES = {
    ProviderStatus.DELIVERED: "delivered_at",
    ProviderStatus.BOUNCED: "bounced_at",
    ProviderStatus.DEFERRED: "deferred_at",
    ProviderStatus.COMPLAINED: "complained_at",
    ProviderStatus.OPENED: "opened_at",
    ProviderStatus.CLICKED: "clicked_at",
    ProviderStatus.UNSUBSCRIBED: "unsubscribed_at",
}
ANNOUNCED = {
    ProviderStatus.DELIVERED: lifecycle.delivery_delivered,
    ProviderStatus.BOUNCED: lifecycle.delivery_bounced,
    ProviderStatus.OPENED: lifecycle.delivery_opened,
}
# Reasons a provider gives for refusing an address it already knows is bad.
_REFUSED_ADDRESS = {"bounced", "invalid"}


@dataclass(frozen=True)
class Recorded:
    matched: int = 0
    ignored: int = 0


def receipts_record(*, provider: str, channel: str, events: Iterable[ReceiptEvent]) -> Recorded:
    """Apply `events` reported by `provider` (anymail's esp_name) to their delivery rows."""
    matched = ignored = 0
    for event in events:
        if _record_one(provider=provider, channel=channel, event=event):
            matched += 1
        else:
            ignored += 1
    return Recorded(matched=matched, ignored=ignored)


def _row_for(*, provider: str, channel: str, event: ReceiptEvent) -> Notification | None:
    if not event.message_id or event.status not in ProviderStatus.values:
        return None
    # By the partial index on provider_message_id (its condition spelled out for the planner).
    row = (
        Notification.objects.exclude(provider_message_id="")
        .filter(provider=provider, provider_message_id=event.message_id[:255], channel=channel)
        .only("id", "platform_id", "address", "channel", "source", "notification_type", "provider_message_id")
        .first()
    )
    if row is None:
        return None
    named = address_normalize(channel=channel, address=event.recipient)
    if named and address_normalize(channel=channel, address=row.address) != named:
        # The id names a delivery to someone else: not this receipt's row.
        logger.warning("%s receipt for %s names delivery %s of another address", provider, event.recipient, row.pk)
        return None
    return row


def _record_one(*, provider: str, channel: str, event: ReceiptEvent) -> bool:
    row = _row_for(provider=provider, channel=channel, event=event)
    if row is None:
        return False
    at = event.timestamp or timezone.now()
    detail = event.detail[:1000]
    milestone = MILESTONES.get(event.status)
    with transaction.atomic():
        DeliveryReceipt.objects.get_or_create(
            notification_id=row.pk,
            defaults={
                "platform_id": row.platform_id,
                "provider": provider[:40],
                "provider_status": event.status,
                "last_event_at": at,
                "detail": detail,
            },
        )
        receipt = DeliveryReceipt.objects.filter(pk=row.pk)
        # Providers post out of order: the status is the newest event's.
        receipt.filter(last_event_at__lte=at).update(
            provider_status=event.status, last_event_at=at, detail=detail, updated_at=timezone.now()
        )
        first = bool(milestone) and receipt.filter(**{f"{milestone}__isnull": True}).update(**{milestone: at}) == 1
        if first:
            _suppress_if_final(provider=provider, row=row, event=event)
            signal = ANNOUNCED.get(event.status)
            if signal is not None:
                transaction.on_commit(partial(_announce, signal, row, provider, event.status, at, detail))
        elif event.status == ProviderStatus.REJECTED:
            _suppress_if_final(provider=provider, row=row, event=event)
    return True


def _suppress_if_final(*, provider: str, row: Notification, event: ReceiptEvent) -> None:
    reason = None
    if event.status == ProviderStatus.BOUNCED and event.permanent:
        reason = SuppressionReason.INVALID_NUMBER if row.channel == "sms" else SuppressionReason.HARD_BOUNCE
    elif event.status == ProviderStatus.COMPLAINED:
        reason = SuppressionReason.COMPLAINT
    elif event.status == ProviderStatus.UNSUBSCRIBED:
        reason = SuppressionReason.UNSUBSCRIBED
    elif event.status == ProviderStatus.REJECTED and event.reject_reason in _REFUSED_ADDRESS:
        reason = SuppressionReason.REJECTED
    if reason is None or not row.address:
        return
    suppression_add(
        platform_id=row.platform_id,
        channel=row.channel,
        address=row.address,
        reason=reason,
        source=provider,
        detail=event.detail,
        notification_id=row.pk,
    )


def _announce(signal, row: Notification, provider: str, status: str, at: datetime, detail: str) -> None:
    lifecycle.announce(
        signal,
        platform_id=row.platform_id,
        payload={
            "notification_id": str(row.pk),
            "source": row.source,
            "channel": row.channel,
            "notification_type": row.notification_type,
            "recipient": row.address,
            "provider": provider,
            "provider_message_id": row.provider_message_id,
            "provider_status": status,
            "occurred_at": at.isoformat(),
            "detail": detail,
        },
    )

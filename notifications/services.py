"""Writes of the core domain, above all the one delivery pipeline.

Every send path ends in `notification_send`:
resolve recipients -> render per recipient -> write one row per recipient and
channel under a unique (source, channel, recipient_key) -> hand pending rows to
the channel backend in batches -> record each result -> count.
Running the same source again only picks up rows that are not yet sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from notifications.backends import get_backend
from notifications.backends.base import Result
from notifications.models import Channel, DeliveryStatus, Notification, Platform
from notifications.preferences import filter_deliveries

logger = logging.getLogger(__name__)

# How long a dispatcher owns the rows it claimed.
CLAIM_LEASE = timedelta(minutes=5)
# Transient failures are tried this many times in all before they stay failed.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Recipient:
    """A user account, or a bare address (email or phone) of someone without one."""

    user_id: int | None = None
    address: str = ""
    context: dict = field(default_factory=dict)

    def key(self) -> str:
        if self.user_id is not None:
            return f"user:{self.user_id}"
        kind = "email" if "@" in self.address else "phone"
        return f"{kind}:{self.address.lower() if kind == 'email' else self.address}"


@dataclass(frozen=True)
class Message:
    title: str = ""
    body: str = ""
    html: str = ""
    short_message: str = ""
    notification_type: str = "system_alert"
    level: str = "info"
    context: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    image_url: str = ""


# A renderer gives the message for one recipient on one channel; `user` is the
# recipient's account or None for a bare address.
Renderer = Callable[[Recipient, str, object], Message]


@dataclass
class SendResult:
    total_recipients: int = 0
    sent: int = 0
    failed: int = 0
    pending: int = 0
    # Push counts device tokens, not users.
    units_sent: int = 0
    units_failed: int = 0
    per_channel: dict = field(default_factory=dict)


def _address_for(channel: str, user) -> str:
    if channel == Channel.EMAIL:
        return user.email or ""
    if channel == Channel.SMS:
        return user.phone_number or ""
    return ""


def _missing_address_error(channel: str) -> str:
    return {Channel.EMAIL: "User has no email address", Channel.SMS: "User has no phone number"}.get(channel, "")


def deliveries_write(
    *,
    platform: Platform,
    source: str,
    channels: Sequence[str],
    recipients: Iterable[Recipient],
    message: Message | None = None,
    render: Renderer | None = None,
    batch_size: int = 2000,
) -> int:
    """Write one pending row per recipient and channel; existing rows are left alone.

    Returns how many recipients were given (after de-duplication).
    """
    if (message is None) == (render is None):
        raise ValueError("give exactly one of message or render")
    User = get_user_model()
    seen: set[str] = set()
    unique: list[Recipient] = []
    for r in recipients:
        k = r.key()
        if k not in seen:
            seen.add(k)
            unique.append(r)
    now = timezone.now()
    for start in range(0, len(unique), batch_size):
        chunk = unique[start : start + batch_size]
        users = User.objects.in_bulk([r.user_id for r in chunk if r.user_id is not None])
        rows = []
        for r in chunk:
            user = users.get(r.user_id) if r.user_id is not None else None
            if r.user_id is not None and user is None:
                continue  # deleted between resolution and write
            for channel in channels:
                msg = message if message is not None else render(r, channel, user)
                address = r.address or (_address_for(channel, user) if user else "")
                error = ""
                if channel in (Channel.EMAIL, Channel.SMS) and not address:
                    error = _missing_address_error(channel)
                if channel in (Channel.IN_APP, Channel.PUSH) and user is None:
                    error = "This channel needs a user account"
                rows.append(
                    Notification(
                        platform=platform,
                        user=user,
                        recipient_key=r.key(),
                        address=address,
                        channel=channel,
                        source=source,
                        notification_type=msg.notification_type,
                        level=msg.level,
                        title=msg.title,
                        body=msg.body,
                        html=msg.html,
                        short_message=msg.short_message,
                        context={**msg.context, **r.context},
                        data=msg.data,
                        image_url=msg.image_url,
                        delivery_status=DeliveryStatus.FAILED if error else DeliveryStatus.PENDING,
                        error=error,
                        created_at=now,
                    )
                )
        # Opted-out recipients get no row (filters registered by the apps, see notifications/preferences.py).
        rows = filter_deliveries(platform=platform, rows=rows)
        Notification.objects.bulk_create(rows, ignore_conflicts=True, batch_size=batch_size)
    return len(unique)


def _claim(*, source: str, channel: str, limit: int) -> list[Notification]:
    """Claim up to `limit` unsent rows of one source and channel under a lease."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(source=source, channel=channel, delivery_status=DeliveryStatus.PENDING)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("created_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        Notification.objects.filter(id__in=ids).update(claimed_until=now + CLAIM_LEASE)
    return list(Notification.objects.filter(id__in=ids).select_related("user").order_by("created_at", "id"))


def _record(delivery: Notification, result: Result) -> None:
    now = timezone.now()
    attempts = delivery.attempts + 1
    if result.ok:
        status = DeliveryStatus.SENT
    elif result.retryable and attempts < MAX_ATTEMPTS:
        status = DeliveryStatus.PENDING
    else:
        status = DeliveryStatus.FAILED
    Notification.objects.filter(pk=delivery.pk).update(
        delivery_status=status,
        error="" if result.ok else result.error[:2000],
        attempts=attempts,
        provider_message_id=result.provider_message_id[:255],
        units_sent=result.units_sent,
        units_failed=result.units_failed,
        sent_at=now if result.ok else None,
        claimed_until=None,
        updated_at=now,
    )


def deliveries_dispatch(*, source: str, channel: str, limit: int | None = None, should_stop=None) -> int:
    """Send the pending rows of one source and channel; returns how many were handled."""
    backend = get_backend(channel)
    handled = 0
    chunk = max(backend.batch_size, 1)
    while limit is None or handled < limit:
        if should_stop is not None and should_stop():
            break
        rows = _claim(source=source, channel=channel, limit=chunk if limit is None else min(chunk, limit - handled))
        if not rows:
            break
        for delivery, result in backend.send(rows):
            _record(delivery, result)
            handled += 1
    return handled


def send_counts(*, source: str) -> SendResult:
    """Counts of one send, straight from its rows."""
    result = SendResult()
    rows = (
        Notification.objects.filter(source=source)
        .values("channel", "delivery_status")
        .annotate(n=Count("id"), us=Sum("units_sent"), uf=Sum("units_failed"))
    )
    recipients = set()
    for row in rows:
        per = result.per_channel.setdefault(row["channel"], {"sent": 0, "failed": 0, "pending": 0})
        per[row["delivery_status"]] += row["n"]
        if row["delivery_status"] == DeliveryStatus.SENT:
            result.sent += row["n"]
        elif row["delivery_status"] == DeliveryStatus.FAILED:
            result.failed += row["n"]
        else:
            result.pending += row["n"]
        result.units_sent += row["us"] or 0
        result.units_failed += row["uf"] or 0
    recipients = Notification.objects.filter(source=source).values("recipient_key").distinct().count()
    result.total_recipients = recipients
    return result


def notification_send(
    *,
    platform: Platform,
    source: str,
    channels: Sequence[str],
    recipients: Iterable[Recipient],
    message: Message | None = None,
    render: Renderer | None = None,
    should_stop=None,
) -> SendResult:
    """Deliver `message` (or what `render` gives per recipient) over `channels`.

    Idempotent per `source`: rows already written are kept, rows already sent
    are never sent again. Returns the counts of the whole source.
    """
    deliveries_write(
        platform=platform, source=source, channels=channels, recipients=recipients, message=message, render=render
    )
    for channel in channels:
        deliveries_dispatch(source=source, channel=channel, should_stop=should_stop)
    return send_counts(source=source)

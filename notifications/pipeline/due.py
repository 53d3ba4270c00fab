"""The scheduler's `deliveries` source: due retries, and rows whose dispatcher died.

Registered with `notifications.scheduler` by the core's AppConfig.ready().
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils.dateparse import parse_datetime

import notifications.pipeline.tuning as tuning
from notifications.models import DeliveryStatus, Notification
from notifications.pipeline.dispatch import deliveries_dispatch_ids, unleased
from notifications.scheduler import oldest


def deliveries_due_claim(*, now: datetime, limit: int, lease: timedelta) -> list[dict]:
    """Claim pending rows whose retry is due or whose dispatcher is gone.

    Each claimed row gets a ticket (a lease end) and the returned items name
    it, so exactly the task the item goes to may take the rows; if that task
    is lost, the rows are due again when the ticket expires.
    """
    ticket = now + lease
    with transaction.atomic():
        claimed = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(delivery_status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .filter(unleased(now))
            .order_by("next_attempt_at")
            .values_list("id", "channel")[:limit]
        )
        if not claimed:
            return []
        Notification.objects.filter(id__in=[pk for pk, _ in claimed]).update(
            claimed_until=ticket, next_attempt_at=ticket
        )
    by_channel: dict[str, list[str]] = {}
    for pk, channel in claimed:
        by_channel.setdefault(channel, []).append(str(pk))
    size = tuning.setting("DISPATCH_CHUNK", tuning.DISPATCH_CHUNK)
    return [
        {"channel": channel, "ids": ids[start : start + size], "ticket": ticket.isoformat()}
        for channel, ids in by_channel.items()
        for start in range(0, len(ids), size)
    ]


def deliveries_oldest_due(*, now: datetime) -> datetime | None:
    """The due time of the longest-waiting retry (or orphaned row) no dispatcher holds."""
    waiting = Notification.objects.filter(delivery_status=DeliveryStatus.PENDING, next_attempt_at__lte=now).filter(
        unleased(now)
    )
    return oldest(waiting, "next_attempt_at")


def deliveries_due_run(*, item_id: dict) -> None:
    deliveries_dispatch_ids(channel=item_id["channel"], ids=item_id["ids"], ticket=parse_datetime(item_id["ticket"]))

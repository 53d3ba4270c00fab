"""Delivery reports providers post back after they accepted a message.

Africa's Talking calls its dashboard's delivery-report URL with `id` (the
`messageId` it answered the send with), `status`, `phoneNumber`,
`networkCode` and, for Rejected and Failed, `failureReason`. The report is
unauthenticated, so it can only ever touch the row whose provider and
provider message id it names, and only move it the one way a report can:
from sent to failed (Rejected, Failed: final answers of the network). Success
leaves the row sent; Sent, Submitted and Buffered are steps on the way.
Applying a report twice changes nothing the second time.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.utils import timezone

from notifications import lifecycle
from notifications.models import DeliveryStatus, Notification

AFRICASTALKING_FINAL_FAILURES = frozenset({"Rejected", "Failed"})
AFRICASTALKING_STATUSES = frozenset({"Sent", "Submitted", "Buffered", "Success", *AFRICASTALKING_FINAL_FAILURES})


def africastalking_report_apply(*, message_id: str, status: str, failure_reason: str = "") -> int:
    """Apply one Africa's Talking delivery report; returns how many rows it changed (0 or 1)."""
    if not message_id:
        return 0
    # By the partial index on provider_message_id (its condition spelled out for the planner).
    rows = Notification.objects.exclude(provider_message_id="").filter(
        provider_message_id=message_id, channel="sms", provider="africastalking", delivery_status=DeliveryStatus.SENT
    )
    if status not in AFRICASTALKING_FINAL_FAILURES:
        if status == "Success":
            for row in rows.only("id", "platform_id"):
                _announce(lifecycle.delivery_delivered, row, status=status, reason="")
        return 0
    reason = f" ({failure_reason})" if failure_reason else ""
    error = f"Africa's Talking delivery report: {status}{reason}"[:2000]
    with transaction.atomic():
        changed = list(rows.select_for_update().only("id", "platform_id"))
        if changed:
            Notification.objects.filter(pk__in=[r.pk for r in changed], delivery_status=DeliveryStatus.SENT).update(
                delivery_status=DeliveryStatus.FAILED, error=error, updated_at=timezone.now()
            )
            for row in changed:
                transaction.on_commit(partial(_announce, lifecycle.delivery_failed, row, status=status, reason=reason))
    return len(changed)


def _announce(signal, row: Notification, *, status: str, reason: str) -> None:
    lifecycle.announce(
        signal,
        platform_id=row.platform_id,
        payload={
            "id": str(row.pk),
            "channel": "sms",
            "provider": "africastalking",
            "status": status,
            "reason": reason.strip(" ()"),
        },
    )

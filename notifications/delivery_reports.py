"""Delivery reports SMS providers post back after they accepted a message.

Africa's Talking calls its dashboard's delivery-report URL with `id` (the
`messageId` it answered the send with), `status`, `phoneNumber`,
`networkCode` and, for Rejected and Failed, `failureReason`. Each report
becomes a `ReceiptEvent` recorded by `notifications.receipts` on the one row
whose provider and provider message id it names (and whose number it names,
when it gives one), exactly as email receipts are:

- Sent, Submitted: `sent`; Buffered (queued by the network): `deferred`;
  Success (on the handset): `delivered`, announced once as `delivery.delivered`.
- Rejected, Failed (and AbsentSubscriber, Expired, which newer accounts
  report as statuses): `failed`, and the row, if still sent, moves to failed
  with the reason, announced once as `delivery.failed`.
- A final failure whose reason says the number itself is bad or refuses us
  (`PERMANENT_REASONS`: InvalidPhoneNumber, UserDoesNotExist, UserInBlackList)
  is a `bounced` receipt instead: the number goes on the row's platform's
  suppression list (reason `invalid_number`) and `delivery.bounced` is
  announced once. Reasons that can pass (UserIsInactive, UserAccountSuspended,
  InsufficientCredit, DeliveryFailure, AbsentSubscriber, ...) suppress nothing.

The report is unauthenticated (Africa's Talking signs nothing), so it can
only ever touch the row its (unguessable) message id names. Applying a report
twice changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from django.db import transaction
from django.utils import timezone

from notifications import lifecycle
from notifications.channels import Channel
from notifications.models import DeliveryStatus, Notification, ProviderStatus
from notifications.phones import normalize
from notifications.receipts import ReceiptEvent, receipts_record

AFRICASTALKING = "africastalking"
# Africa's Talking's delivery-report statuses -> our provider status.
AFRICASTALKING_STATUSES = {
    "Sent": ProviderStatus.SENT,
    "Submitted": ProviderStatus.SENT,
    "Buffered": ProviderStatus.DEFERRED,
    "Success": ProviderStatus.DELIVERED,
    "Rejected": ProviderStatus.FAILED,
    "Failed": ProviderStatus.FAILED,
    "AbsentSubscriber": ProviderStatus.FAILED,
    "Expired": ProviderStatus.FAILED,
}
AFRICASTALKING_FINAL_FAILURES = frozenset(s for s, ours in AFRICASTALKING_STATUSES.items() if ours == "failed")
# failureReasons that say the number itself cannot, or must not, get our SMS (compared case-insensitively:
# the docs spell both UserInBlackList and UserInBlacklist).
PERMANENT_REASONS = frozenset({"invalidphonenumber", "userdoesnotexist", "userinblacklist"})


@dataclass(frozen=True)
class ReportApplied:
    matched: int  # 1 when the report named a delivery of ours
    updated: int  # 1 when it moved that delivery from sent to failed


def africastalking_report_apply(
    *, message_id: str, status: str, failure_reason: str = "", phone_number: str = "", network_code: str = ""
) -> ReportApplied:
    """Apply one Africa's Talking delivery report to the delivery it names."""
    ours = AFRICASTALKING_STATUSES.get(status)
    if not message_id or ours is None:
        return ReportApplied(matched=0, updated=0)
    final_failure = status in AFRICASTALKING_FINAL_FAILURES
    permanent = final_failure and failure_reason.strip().lower() in PERMANENT_REASONS
    detail = status + (f": {failure_reason}" if failure_reason else "")
    if network_code:
        detail += f" (network {network_code})"
    event = ReceiptEvent(
        status=ProviderStatus.BOUNCED if permanent else ours,
        message_id=message_id,
        recipient=reported_number(phone_number),
        timestamp=timezone.now(),  # reports carry no time of their own
        detail=detail,
        permanent=True,
    )
    with transaction.atomic():
        recorded = receipts_record(provider=AFRICASTALKING, channel=Channel.SMS, events=[event])
        if not recorded.matched:
            return ReportApplied(matched=0, updated=0)
        error = f"Africa's Talking delivery report: {detail}"
        updated = _fail_if_sent(provider=AFRICASTALKING, message_id=message_id, error=error) if final_failure else 0
    return ReportApplied(matched=1, updated=updated)


def reported_number(raw: str) -> str:
    """A number as a report gives it; international digits without their "+" (251911...) get it back."""
    raw = raw.strip()
    if raw.isdigit() and normalize(raw) is None and normalize(f"+{raw}") is not None:
        return f"+{raw}"
    return raw


def _fail_if_sent(*, provider: str, message_id: str, error: str) -> int:
    """Move the sent row to failed (a final answer of the network); 0 when it already moved."""
    rows = Notification.objects.exclude(provider_message_id="").filter(
        provider_message_id=message_id[:255],
        channel=Channel.SMS,
        provider=provider,
        delivery_status=DeliveryStatus.SENT,
    )
    changed = list(rows.select_for_update().values_list("pk", flat=True))
    if not changed:
        return 0
    error = error[:2000]
    Notification.objects.filter(pk__in=changed).update(
        delivery_status=DeliveryStatus.FAILED, error=error, updated_at=timezone.now()
    )
    fields = lifecycle.payload_fields(lifecycle.delivery_failed.name)
    for row in Notification.objects.filter(pk__in=changed).values("id", "platform_id", *fields):
        payload = lifecycle.notification_payload(lifecycle.delivery_failed.name, row)
        announce = partial(lifecycle.announce, lifecycle.delivery_failed, platform_id=row["platform_id"])
        transaction.on_commit(partial(announce, payload=payload))
    return len(changed)


# -- AfroMessage ------------------------------------------------------------------------------
#
# AfroMessage documents the `callback` parameter of its send API but not what it sends
# there. What is assumed (README, "SMS providers and failover"): a GET or POST whose query,
# form or JSON body carries `status`, with `message_id` and `to` as in its send answer.
# The URL is ours and signed per delivery (`notifications.callback_urls`), so the report
# is tied to its delivery whatever fields it brings; a `message_id`, when given, must be
# that delivery's. Status words are read loosely (case and punctuation ignored, DLR
# spellings too); a word we do not know is recorded as `unknown`, the word kept in the
# receipt's detail, changing nothing else. No failure reason is documented, so
# AfroMessage reports never put a number on the suppression list.

AFROMESSAGE = "afromessage"
AFROMESSAGE_STATUSES = {
    **dict.fromkeys(("delivered", "delivrd", "success", "successful"), ProviderStatus.DELIVERED),
    **dict.fromkeys(
        ("failed", "failure", "undelivered", "undeliv", "undeliverable", "expired", "rejected", "rejectd"),
        ProviderStatus.FAILED,
    ),
    **dict.fromkeys(("send", "sent", "submitted", "accepted", "pending", "queued", "enroute"), ProviderStatus.SENT),
}


def afromessage_status(raw: str) -> str:
    """AfroMessage's status word -> our provider status (`unknown` for a word we do not know)."""
    word = "".join(ch for ch in raw.lower() if ch.isalpha())
    return AFROMESSAGE_STATUSES.get(word, ProviderStatus.UNKNOWN)


def afromessage_report_apply(*, notification_id, status: str, message_id: str = "", phone: str = "") -> ReportApplied:
    """Apply one AfroMessage status report to the delivery its callback URL was signed for."""
    row = (
        Notification.objects.filter(pk=notification_id, channel=Channel.SMS, provider=AFROMESSAGE)
        .exclude(provider_message_id="")
        .only("id", "provider_message_id")
        .first()
    )
    # No row: another provider took it over, or the report came before its send was recorded.
    if row is None or (message_id and message_id != row.provider_message_id):
        return ReportApplied(matched=0, updated=0)
    ours = afromessage_status(status)
    detail = f"AfroMessage: {status}"
    event = ReceiptEvent(
        status=ours,
        message_id=row.provider_message_id,
        recipient=reported_number(phone),
        timestamp=timezone.now(),
        detail=detail,
    )
    with transaction.atomic():
        recorded = receipts_record(provider=AFROMESSAGE, channel=Channel.SMS, events=[event])
        if not recorded.matched:
            return ReportApplied(matched=0, updated=0)
        updated = 0
        if ours == ProviderStatus.FAILED:
            error = f"AfroMessage status report: {status}"
            updated = _fail_if_sent(provider=AFROMESSAGE, message_id=row.provider_message_id, error=error)
    return ReportApplied(matched=1, updated=updated)

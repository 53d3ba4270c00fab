"""Shapes of the bulk and scheduled endpoints (bulk document §4-§10).

Request serializers describe the bodies for the OpenAPI schema; the bodies
themselves are checked by `notifications.bulk_scheduled.inputs`, which owns the
document's exact error messages and is shared with the admin.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rest_framework import serializers

from notifications.bounds import BIGINT_MAX
from notifications.bulk_scheduled.inputs import TARGETS_MAX
from notifications.models import Level, Notification, Role, ScheduledChannel, ScheduledNotification, ScheduledStatus
from notifications.sanitize import sanitize_html


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with milliseconds, as the document prints them (`2026-06-15T09:00:00.000Z`)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- Requests (schema only) ---------------------------------------------------

_SCHEDULED_AT = serializers.CharField(
    required=False,
    allow_blank=True,
    help_text=(
        "RFC3339, e.g. 2026-06-15T09:00:00Z; omit to send now. In the future and at most "
        "INPUT_DATE_HORIZON_DAYS (default 5 years) ahead."
    ),
)


def _user_ids() -> serializers.ListField:
    ids = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)
    return serializers.ListField(child=ids, required=False, max_length=TARGETS_MAX)


_ROLE = serializers.ChoiceField(
    choices=Role.choices, required=False, help_text="Every member holding this role on the platform"
)


HTML_HELP = (
    "HTML: sanitised with the one allowlist (no scripts, event handlers, javascript: URLs or remote CSS) "
    "when stored and again when sent."
)


class BulkSmsRequestSerializer(serializers.Serializer):
    message = serializers.CharField(help_text="SMS body")
    user_ids = _user_ids()
    role = _ROLE
    phone_numbers = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="E.164 or local numbers"
    )
    scheduled_at = _SCHEDULED_AT


class BulkEmailRequestSerializer(serializers.Serializer):
    subject = serializers.CharField()
    message = serializers.CharField(
        required=False, help_text="Plain-text body (this or html). Text: never interpreted as HTML."
    )
    html = serializers.CharField(required=False, help_text="HTML body (this or message). " + HTML_HELP)
    user_ids = serializers.CharField(required=False, help_text='JSON array string, e.g. "[1,2,3]"')
    role = _ROLE
    emails = serializers.CharField(required=False, help_text='JSON array string, e.g. ["a@b.com"]')
    scheduled_at = _SCHEDULED_AT
    file = serializers.ListField(
        child=serializers.FileField(), required=False, help_text="Attachment(s); kept for scheduled sends too"
    )


class BulkPushRequestSerializer(serializers.Serializer):
    title = serializers.CharField()
    message = serializers.CharField()
    user_ids = serializers.CharField(required=False, help_text='JSON array string, e.g. "[1,2,3]"')
    role = _ROLE
    scheduled_at = _SCHEDULED_AT
    file = serializers.FileField(required=False, help_text="Image (PNG, JPEG, GIF, WebP); kept for scheduled sends")


class BulkInAppRequestSerializer(serializers.Serializer):
    title = serializers.CharField(help_text="payload.headline")
    message = serializers.CharField(help_text="payload.message")
    user_ids = _user_ids()
    role = _ROLE
    scheduled_at = _SCHEDULED_AT
    type = serializers.CharField(required=False, default="system_alert")
    level = serializers.ChoiceField(choices=Level.choices, required=False, default=Level.INFO)


class ScheduledPatchRequestSerializer(serializers.Serializer):
    """Any field of the job's channel's create request; omitted fields keep their value."""

    title = serializers.CharField(required=False, help_text="push, in-app")
    subject = serializers.CharField(required=False, help_text="email")
    message = serializers.CharField(required=False)
    html = serializers.CharField(required=False, help_text="email. " + HTML_HELP)
    user_ids = _user_ids()
    role = serializers.CharField(required=False, allow_blank=True)
    phone_numbers = serializers.ListField(child=serializers.CharField(), required=False, help_text="sms")
    emails = serializers.ListField(child=serializers.EmailField(), required=False, help_text="email")
    type = serializers.CharField(required=False, help_text="in-app")
    level = serializers.ChoiceField(choices=Level.choices, required=False, help_text="in-app")
    scheduled_at = serializers.CharField(
        required=False, help_text="RFC3339, in the future and at most INPUT_DATE_HORIZON_DAYS (default 5 years) ahead"
    )
    file = serializers.FileField(required=False, help_text="email: replaces the attachments; push: the image")


# --- Responses ----------------------------------------------------------------


class ImmediateResultSerializer(serializers.Serializer):
    total_recipients = serializers.IntegerField()
    sent = serializers.IntegerField(help_text="Deliveries the provider accepted")
    failed = serializers.IntegerField(help_text="Deliveries that failed for good")
    pending = serializers.IntegerField(
        help_text=(
            "Deliveries waiting for a retry (the provider refused for now: a timeout, a 4xx SMTP reply, "
            "a 429 or 5xx) or deferred by a delivery rule (the recipient's quiet hours, a frequency cap) "
            "until their time; they become sent or failed later, as the job's deliveries show. "
            "sent + failed + pending + suppressed = total_recipients."
        )
    )
    suppressed = serializers.IntegerField(
        help_text="Deliveries held back by a delivery rule (a frequency cap that drops, a suppression list); "
        "never sent. The job's deliveries show each one's rule."
    )


class PushResultSerializer(serializers.Serializer):
    target_users = serializers.IntegerField()
    sent = serializers.IntegerField(help_text="Device tokens that took the notification")
    failed = serializers.IntegerField(help_text="Device tokens that did not")
    image = serializers.CharField(help_text="Absolute URL of the uploaded image, or empty")
    pending = serializers.IntegerField(
        help_text="Users whose push waits for a retry (FCM unavailable for now) or for the end of their quiet hours"
    )
    no_device = serializers.IntegerField(
        help_text="Users without an active device: nothing was sent to them and no token counts for them"
    )
    suppressed = serializers.IntegerField(help_text="Users whose push a delivery rule held back; never sent")


class ScheduledNotificationSerializer(serializers.Serializer):
    """The document's ScheduledNotification object, field for field."""

    id = serializers.IntegerField()
    channel = serializers.ChoiceField(choices=ScheduledChannel.choices)
    title = serializers.CharField(help_text="Text")
    message = serializers.CharField(help_text="Text: never interpreted as HTML")
    html = serializers.CharField(help_text="Sanitised HTML (email only)")
    scheduled_at = serializers.CharField()
    status = serializers.ChoiceField(choices=ScheduledStatus.choices)
    target_user_ids = serializers.ListField(child=serializers.IntegerField())
    target_role = serializers.CharField()
    target_raw = serializers.DictField(help_text="phones / emails (direct addresses), type / level (in-app)")
    attempt_count = serializers.IntegerField()
    last_error = serializers.CharField()
    processing_started_at = serializers.CharField(allow_null=True)
    sent_at = serializers.CharField(allow_null=True)
    cancelled_at = serializers.CharField(allow_null=True)
    created_by = serializers.IntegerField(allow_null=True)
    created_at = serializers.CharField()
    updated_at = serializers.CharField()

    def to_representation(self, job: ScheduledNotification) -> dict:
        return {
            "id": job.pk,
            "channel": job.channel,
            "title": job.title,
            "message": job.message,
            "html": sanitize_html(job.html),  # rows stored before html was sanitised on input
            "scheduled_at": timestamp(job.scheduled_at),
            "status": job.status,
            "target_user_ids": list(job.target_user_ids or []),
            "target_role": job.target_role,
            "target_raw": dict(job.target_raw or {}),
            "attempt_count": job.attempt_count,
            "last_error": job.last_error,
            "processing_started_at": timestamp(job.processing_started_at),
            "sent_at": timestamp(job.sent_at),
            "cancelled_at": timestamp(job.cancelled_at),
            "created_by": job.created_by_id,
            "created_at": timestamp(job.created_at),
            "updated_at": timestamp(job.updated_at),
        }


class ScheduledListSerializer(serializers.Serializer):
    scheduled_notifications = ScheduledNotificationSerializer(many=True)
    total_count = serializers.IntegerField()
    limit = serializers.IntegerField()
    page = serializers.IntegerField()


class CancelResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    cancelled_at = serializers.CharField()


class DeliverySerializer(serializers.Serializer):
    """One recipient's delivery of a job."""

    id = serializers.UUIDField()
    recipient_id = serializers.IntegerField(allow_null=True, help_text="User id; null for a bare address")
    recipient = serializers.CharField(help_text='"user:<id>", "email:<address>" or "phone:<E.164>"')
    address = serializers.CharField(help_text="Email or phone the delivery went to (empty for push and in-app)")
    status = serializers.ChoiceField(choices=["pending", "sent", "failed", "suppressed"])
    rule = serializers.CharField(
        help_text="The delivery rule that deferred or held back this delivery (quiet_hours, frequency_cap, "
        "suppression_list, ...); empty when none acted on it"
    )
    next_attempt_at = serializers.CharField(
        allow_null=True, help_text="Pending: when it goes out (a retry, or the end of quiet hours or a cap window)"
    )
    error = serializers.CharField()
    attempts = serializers.IntegerField()
    units_sent = serializers.IntegerField(help_text="Push: device tokens reached")
    units_failed = serializers.IntegerField(help_text="Push: device tokens that failed")
    provider_message_id = serializers.CharField()
    sent_at = serializers.CharField(allow_null=True)
    created_at = serializers.CharField()
    updated_at = serializers.CharField()

    def to_representation(self, row: Notification) -> dict:
        return {
            "id": str(row.pk),
            "recipient_id": row.user_id,
            "recipient": row.recipient_key,
            "address": row.address,
            "status": row.delivery_status,
            "rule": row.rule,
            "next_attempt_at": timestamp(row.next_attempt_at) if row.delivery_status == "pending" else None,
            "error": row.error,
            "attempts": row.attempts,
            "units_sent": row.units_sent,
            "units_failed": row.units_failed,
            "provider_message_id": row.provider_message_id,
            "sent_at": timestamp(row.sent_at),
            "created_at": timestamp(row.created_at),
            "updated_at": timestamp(row.updated_at),
        }


class DeliverySummarySerializer(serializers.Serializer):
    total_recipients = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Waiting for a retry or for a delivery rule's time")
    suppressed = serializers.IntegerField(help_text="Held back by a delivery rule; never sent")
    units_sent = serializers.IntegerField()
    units_failed = serializers.IntegerField()


class DeliveryPageSerializer(serializers.Serializer):
    deliveries = DeliverySerializer(many=True)
    total_count = serializers.IntegerField()
    limit = serializers.IntegerField()
    page = serializers.IntegerField()
    summary = DeliverySummarySerializer()

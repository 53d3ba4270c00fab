"""What providers reported after accepting a delivery, and who must not be sent to again.

- `DeliveryReceipt`: the provider's later word on one delivery row (delivered,
  bounced, opened, ...), for every channel that has receipts. It is a table of
  its own, written only when a receipt arrives, so the fan-out's hot table
  stays as narrow as it is.
- `Suppression`: a platform's suppression list. A hard bounce, a complaint, an
  unsubscribe or an SMS "invalid number" report puts an address on it; later
  sends write the delivery as `suppressed` (rule `suppression_list`) instead of
  sending it, until a platform admin lifts the entry.
"""

from __future__ import annotations

from django.db import models

from notifications.channels import Channel
from notifications.models.core import Notification, Platform


class ProviderStatus(models.TextChoices):
    """The provider's latest word on a delivery (anymail's normalised event types, SMS reports mapped onto them)."""

    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    DEFERRED = "deferred", "Deferred"
    DELIVERED = "delivered", "Delivered"
    BOUNCED = "bounced", "Bounced"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"
    COMPLAINED = "complained", "Complained"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    UNKNOWN = "unknown", "Unknown"


class DeliveryReceipt(models.Model):
    """The receipts of one delivery row: its latest provider status and when each milestone first happened.

    Each `*_at` holds the first time it happened and is never moved, and the
    status follows the newest event by the provider's own timestamp, so a
    provider re-posting a webhook (they retry until answered) changes nothing.
    """

    notification = models.OneToOneField(
        Notification, primary_key=True, on_delete=models.CASCADE, related_name="receipt", db_constraint=False
    )
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=40, blank=True, help_text="Who reported it (anymail's esp_name).")
    provider_status = models.CharField(max_length=20, choices=ProviderStatus.choices)
    detail = models.CharField(max_length=1000, blank=True, help_text="The provider's reason or MTA response.")
    last_event_at = models.DateTimeField(help_text="The provider's time of the event behind provider_status.")
    delivered_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    deferred_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.notification_id}: {self.provider_status}"


class SuppressionReason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce", "Hard bounce"
    COMPLAINT = "complaint", "Spam complaint"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    INVALID_NUMBER = "invalid_number", "Invalid or blacklisted number"
    REJECTED = "rejected", "Rejected by the provider"


class Suppression(models.Model):
    """One address a platform no longer sends to on one channel.

    `notification_type` blank means every type; an entry from an unsubscribe
    link names the one type the link was for. Lifting an entry deletes it.
    """

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="suppressions")
    channel = models.CharField(max_length=20, choices=Channel.choices)
    # Email addresses lower-cased, phone numbers in E.164: as the pipeline writes `Notification.address`.
    address = models.CharField(max_length=320)
    notification_type = models.CharField(max_length=100, blank=True, help_text="Blank: every notification type.")
    reason = models.CharField(max_length=20, choices=SuppressionReason.choices)
    source = models.CharField(
        max_length=60, help_text="What reported it: a provider (Postmark, Mailgun, ...) or unsubscribe_link."
    )
    detail = models.CharField(max_length=1000, blank=True)
    notification = models.ForeignKey(
        Notification, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "channel", "address", "notification_type"], name="uniq_suppression"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_reason_display()})"

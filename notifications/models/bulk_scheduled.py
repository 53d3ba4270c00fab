"""Bulk sends: the scheduled jobs and the history of sends that went out at once."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from notifications.channels import DELIVERY_CHANNEL, ScheduledChannel
from notifications.models.core import Platform


class ScheduledStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ScheduledNotification(models.Model):
    """One bulk send that runs at `scheduled_at`.

    Targeting is stored as it was given and resolved when the job runs. The
    job's deliveries are ordinary Notification rows with source
    `scheduled:<id>`, so a job resumed after a crash skips whoever was sent.
    """

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="scheduled_notifications")
    channel = models.CharField(max_length=10, choices=ScheduledChannel.choices)
    title = models.CharField(max_length=500, blank=True, help_text="Subject (email) or headline (push, in-app).")
    message = models.TextField(blank=True)
    html = models.TextField(blank=True, help_text="HTML body (email only).")
    image_url = models.URLField(max_length=1000, blank=True, help_text="Image of a push notification.")
    scheduled_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=ScheduledStatus.choices, default=ScheduledStatus.PENDING)

    target_user_ids = models.JSONField(default=list, blank=True)
    target_role = models.CharField(max_length=20, blank=True)
    # phones / emails for direct addresses, type / level for in-app.
    target_raw = models.JSONField(default=dict, blank=True)

    attempt_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # When the job is next due: `scheduled_at` at first, later the retry time
    # after a transient failure. Kept apart so `scheduled_at` stays what the
    # client asked for.
    due_at = models.DateTimeField()
    # The worker running the job owns it until then; a crashed worker's job is
    # claimed again once it passes.
    claimed_until = models.DateTimeField(null=True, blank=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Counts of the job's deliveries, written when a run ends (the admin list
    # shows them without counting every job's rows).
    total_recipients = models.PositiveIntegerField(default=0)
    sent_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-scheduled_at", "-id"]
        verbose_name = "scheduled notification"
        # Editing is past the bulk document, which has list/get/cancel only
        # (those keys live on Notification's Meta with the rest of the document's).
        permissions = [("scheduled_update", "notifications_scheduled.update")]
        indexes = [
            # The sweep's two claims, each straight off a small partial index
            # however many future jobs wait in the table.
            models.Index(fields=["due_at"], name="scheduled_due", condition=Q(status="pending")),
            models.Index(fields=["claimed_until"], name="scheduled_lease", condition=Q(status="processing")),
            models.Index(fields=["platform", "-scheduled_at"], name="scheduled_platform_time"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} #{self.pk} at {self.scheduled_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def source(self) -> str:
        """The delivery rows' source: the same on every run, so a resumed job never re-sends."""
        return f"scheduled:{self.pk}"

    @property
    def delivery_channel(self) -> str:
        return DELIVERY_CHANNEL[self.channel]


class ImmediateSend(models.Model):
    """One bulk send that went out at once: the send history beside the scheduled jobs.

    Written by `bulk_send` for the API and the admin alike. Its deliveries are
    the Notification rows with source `bulk:<id>`; the counts here are those
    the caller was answered with, the rows say how retries ended since.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="immediate_sends")
    channel = models.CharField(max_length=10, choices=ScheduledChannel.choices)
    title = models.CharField(max_length=500, blank=True)
    message = models.TextField(blank=True)
    image_url = models.URLField(max_length=1000, blank=True)
    # Who was asked for, as given: user ids, the role, direct addresses.
    target_user_ids = models.JSONField(default=list, blank=True)
    target_role = models.CharField(max_length=20, blank=True)
    target_addresses = models.JSONField(default=list, blank=True)
    target_users = models.PositiveIntegerField(default=0, help_text="Members the targeting resolved to.")
    total_recipients = models.PositiveIntegerField(default=0)
    sent_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "sent-now notification"
        indexes = [models.Index(fields=["platform", "-created_at"], name="immediate_platform_time")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} sent {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def source(self) -> str:
        return f"bulk:{self.pk}"

    @property
    def delivery_channel(self) -> str:
        return DELIVERY_CHANNEL[self.channel]

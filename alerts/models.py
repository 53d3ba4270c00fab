"""Alerts and calendar events of one user on one platform (`/alerts`).

An alert is the user's record of something that happened (low stock, an
overdue loan) or, with `is_event`, a calendar entry. Its notification goes out
through the core delivery pipeline at its due time; the fields below the
divider are the scheduler's bookkeeping and never appear in the API.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from notifications.models import Platform


class AlertType(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


# API names of the fields `timing_errors` reports on -> model field names.
MODEL_FIELDS = {"scheduledAt": "scheduled_at", "notifyAt": "notify_at"}


def timing_errors(*, is_event: bool, scheduled_at, notify_at) -> dict[str, str]:
    """The rules between an alert's times, keyed by API field name."""
    if is_event and scheduled_at is None:
        return {"scheduledAt": "An event needs scheduledAt."}
    if scheduled_at is not None and notify_at is not None and notify_at > scheduled_at:
        return {"notifyAt": "notifyAt must not be after scheduledAt."}
    return {}


class AlertQuerySet(models.QuerySet):
    def live(self):
        """Not soft-deleted: what the API may show at all."""
        return self.filter(deleted_at__isnull=True)

    def due(self, now):
        """Alerts whose notification should go out now (the sweep's partial index)."""
        return self.filter(due_at__lte=now, notified_at__isnull=True, deleted_at__isnull=True)


class Alert(models.Model):
    id = models.BigAutoField(primary_key=True)
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="alerts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts")
    # The service account that posted it for `user`; empty when users made their own.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    title = models.CharField(max_length=255)
    message = models.TextField()
    type = models.CharField(max_length=10, choices=AlertType.choices, default=AlertType.INFO)
    is_read = models.BooleanField(default=False)
    read_at = models.DateTimeField(null=True, blank=True)
    is_event = models.BooleanField(default=False)
    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="When the event takes place.")
    notify_at = models.DateTimeField(null=True, blank=True, help_text="When the user asked to be notified.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Soft delete: gone from the API, kept for audit, restorable in the admin.
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Read alerts past the retention period: hidden from the default list.
    archived_at = models.DateTimeField(null=True, blank=True)

    # --- notification bookkeeping ---------------------------------------------
    # When the notification is due: notify_at, else the event's time, else the
    # creation time for a new unread alert. Empty means nothing to send.
    due_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Bumped whenever the notification is moved into the future; part of the
    # delivery source key, so each schedule is delivered exactly once.
    notify_generation = models.PositiveIntegerField(default=0, editable=False)
    notified_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Lease of the sweep that claimed the alert; a dead worker's claim runs out.
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The list, the unread filter and the unread badge count.
            models.Index(fields=["user", "is_read", "-created_at"], name="alert_user_read_created"),
            models.Index(fields=["user", "platform", "-created_at"], name="alert_user_platform_created"),
            # Upcoming-events window (`from`/`to` on scheduledAt).
            models.Index(
                fields=["user", "scheduled_at"], name="alert_user_scheduled", condition=Q(scheduled_at__isnull=False)
            ),
            # The every-second sweep reads only what is still to be notified.
            models.Index(
                fields=["due_at"],
                name="alert_due",
                condition=Q(notified_at__isnull=True, deleted_at__isnull=True, due_at__isnull=False),
            ),
            # The retention task reads only read, unarchived alerts.
            models.Index(
                fields=["created_at"],
                name="alert_archivable",
                condition=Q(is_read=True, archived_at__isnull=True, deleted_at__isnull=True),
            ),
        ]
        permissions = [("create_for_user", "alerts.create_for_user")]

    def __str__(self) -> str:
        return self.title

    def clean(self):
        errors = timing_errors(is_event=self.is_event, scheduled_at=self.scheduled_at, notify_at=self.notify_at)
        if errors:
            raise ValidationError({MODEL_FIELDS[name]: message for name, message in errors.items()})

    @property
    def source_key(self) -> str:
        """The delivery pipeline's source for this alert's current schedule."""
        return f"alert:{self.pk}:{self.notify_generation}"


class UpcomingEvent(Alert):
    """Admin view of calendar events still to come."""

    class Meta:
        proxy = True
        verbose_name = "upcoming event"
        verbose_name_plural = "upcoming events"

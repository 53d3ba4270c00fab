"""Outbound webhooks: a platform's endpoints, the messages owed to them, and every attempt.

A `WebhookMessage` is one event for one endpoint: its id is the Standard
Webhooks `webhook-id` the receiver de-duplicates on, the same on every attempt
and every replay. Messages are written when the event happens (in bulk) and
delivered by Celery; `WebhookAttempt` keeps each try's answer.
"""

from __future__ import annotations

import base64
import secrets
import uuid

from django.db import models

from notifications import crypto
from notifications.models import Platform

SECRET_PREFIX = "whsec_"


def secret_generate() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookEndpoint(models.Model):
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    # Lifecycle event names (notifications.lifecycle); see webhooks.events.EVENT_TYPES.
    event_types = models.JSONField(default=list)
    # Encrypted at rest (notifications.crypto); readable back to sign every attempt.
    secret_encrypted = models.TextField(editable=False)
    is_active = models.BooleanField(default=True)
    # The first failed attempt since the last success: failing for WEBHOOK_DISABLE_AFTER_SECONDS disables it.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["platform_id", "id"]
        permissions = [("ibl_webhook_action", "Ibl.Notifications/Webhook/action")]

    def __str__(self):
        return self.url

    @property
    def secret(self) -> str | None:
        """The plain secret, or None when SECRET_KEY changed since it was stored (rotate it)."""
        return crypto.decrypt(self.secret_encrypted)

    def secret_set(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret)


class MessageStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # first try or a retry to come
    DELIVERED = "delivered", "Delivered"  # a 2xx answer
    FAILED = "failed", "Failed"  # attempts used up, or the endpoint was disabled


class WebhookMessage(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="messages")
    event_type = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    # Attempts of the current round (a replay starts a new round); every attempt is in WebhookAttempt.
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # While a task holds the message; once the lease ends, the sweep may claim it again.
    claimed_until = models.DateTimeField(null=True, blank=True)
    # The task sending the message now (set by its claim). None with a live lease: handed to a
    # task that has not claimed it yet; a second copy of that task finds it taken and skips it.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_msg_due",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["endpoint", "status", "created_at"], name="webhook_msg_endpoint"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.webhook_id}"

    @property
    def webhook_id(self) -> str:
        """The `webhook-id` header: the same on every attempt, so receivers can de-duplicate."""
        return f"msg_{self.id.hex}"


class WebhookAttempt(models.Model):
    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="attempt_log")
    created_at = models.DateTimeField()
    # None when no HTTP answer came (refused address, connection error, timeout).
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.status_code or self.error[:40]}"

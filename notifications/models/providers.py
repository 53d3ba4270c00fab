from __future__ import annotations

from django.db import models

from notifications import crypto
from notifications.models.core import Platform


class SMSProvider(models.TextChoices):
    """The SMS providers a platform may bring its own account for (names as in NOTIFICATION_BACKENDS)."""

    AFROMESSAGE = "afromessage", "AfroMessage"
    AFRICASTALKING = "africastalking", "Africa's Talking"


class PlatformProviderCredentials(models.Model):
    """A platform's own account at an SMS provider; without one, its SMS go out on the project's.

    Like `PlatformSMTPSettings`: the secret (AfroMessage token, Africa's
    Talking API key) is write-only everywhere and stored encrypted with the
    same key. Which providers a channel uses, and in what order, stays the
    project's `NOTIFICATION_BACKENDS`; this only swaps the account.
    """

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="provider_credentials")
    provider = models.CharField(max_length=30, choices=SMSProvider.choices)
    # Africa's Talking: the application's username (AfroMessage has none).
    username = models.CharField(max_length=255, blank=True)
    secret_encrypted = models.TextField(blank=True, editable=False)
    # AfroMessage: the identifier id of a short code; Africa's Talking: the short code or alphanumeric "from".
    sender_id = models.CharField(max_length=255, blank=True)
    # AfroMessage: a verified sender name.
    sender_name = models.CharField(max_length=255, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "platform provider credentials"
        verbose_name_plural = "platform provider credentials"
        constraints = [models.UniqueConstraint(fields=["platform", "provider"], name="uniq_platform_provider")]

    def __str__(self) -> str:
        return f"{self.platform.key}: {self.get_provider_display()}"

    @property
    def secret(self) -> str | None:
        return crypto.decrypt(self.secret_encrypted)

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_encrypted = crypto.encrypt(value)

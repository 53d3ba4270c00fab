from __future__ import annotations

from django.db import models

from notifications import crypto
from notifications.models.core import Platform


class PlatformSMTPSettings(models.Model):
    """A platform's own SMTP server; without one, mail goes through the project's.

    The password is write-only in every API and stored encrypted.
    """

    platform = models.OneToOneField(Platform, on_delete=models.CASCADE, related_name="smtp_settings")
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=587)
    username = models.CharField(max_length=255, blank=True)
    password_encrypted = models.TextField(blank=True, editable=False)
    use_tls = models.BooleanField(default=True)
    use_ssl = models.BooleanField(default=False)
    from_email = models.CharField(max_length=320, blank=True)
    timeout = models.PositiveIntegerField(default=10)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "platform SMTP settings"
        verbose_name_plural = "platform SMTP settings"
        constraints = [
            models.CheckConstraint(
                condition=~(models.Q(use_tls=True) & models.Q(use_ssl=True)), name="smtp_tls_xor_ssl"
            )
        ]

    def __str__(self) -> str:
        return f"{self.platform.key}: {self.host}:{self.port}"

    @property
    def password(self) -> str | None:
        return crypto.decrypt(self.password_encrypted)

    @password.setter
    def password(self, value: str) -> None:
        self.password_encrypted = crypto.encrypt(value)

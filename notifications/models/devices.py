from __future__ import annotations

import swapper
from django.db import models

from notifications.models.core import Platform

# fcm-django's device model is swappable; follow the project's choice.
FCM_DEVICE_MODEL = swapper.get_model_name("fcm_django", "FCMDevice")


class DeviceRegistration(models.Model):
    """Which platforms a push device was registered on, and as which app.

    fcm-django's `FCMDevice` keeps one row per token (the token is unique) and
    knows nothing of tenants or of the IBL fields `cloud_message_type` and
    `application_id`. This row adds them: a token registered through
    `orgs/{org}/.../register-fcm-token/` gets one registration per platform, so
    a learner on two platforms with one app receives both platforms' pushes,
    and removing it on one platform leaves the other alone.
    """

    class CloudMessageType(models.TextChoices):
        FCM = "FCM", "FCM"
        # The legacy name older clients still send; such tokens are FCM tokens
        # and go through FCM HTTP v1 like any other.
        GCM = "GCM", "GCM (legacy name, delivered through FCM)"

    device = models.ForeignKey(FCM_DEVICE_MODEL, on_delete=models.CASCADE, related_name="registrations")
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="device_registrations")
    cloud_message_type = models.CharField(max_length=10, choices=CloudMessageType.choices, default="FCM")
    application_id = models.CharField(max_length=64, default="ibl_fcm_app")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "platform"], name="uniq_device_platform")]
        indexes = [models.Index(fields=["platform", "device"], name="device_reg_platform")]

    def __str__(self) -> str:
        return f"{self.device_id} @ {self.platform_id} ({self.application_id})"

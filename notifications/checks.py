"""System checks of the core: channels that would not reach anyone in production."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning


def check_channel_backends(app_configs=None, **kwargs):
    """notifications.W001: a channel on a console (or test) backend outside DEBUG.

    Console backends are right for development, but a production install
    whose SMS or push backend prints to stdout reports deliveries that never
    happened. `/healthz` shows the same under `channels`.
    """
    if settings.DEBUG:
        return []
    from notifications.backends import channel_backends

    warnings = []
    for channel, info in channel_backends().items():
        if info["real"]:
            continue
        hint = {
            "email": (
                "Set EMAIL_HOST (and EMAIL_PORT, EMAIL_HOST_USER, ...) or EMAIL_BACKEND. "
                "Platforms with their own SMTP settings send through those regardless."
            ),
            "sms": "Set AFROMESSAGE_TOKEN (and AFROMESSAGE_SENDER_ID) or NOTIFY_SMS_BACKEND.",
            "push": "Set FCM_SERVICE_ACCOUNT_KEY or NOTIFY_PUSH_BACKEND.",
        }.get(channel, f"Set NOTIFY_{channel.upper()}_BACKEND.")
        name = info.get("mail_backend", info["backend"])
        warnings.append(
            Warning(
                f"The {channel} channel runs on the {name} backend: its deliveries reach nobody.",
                hint=hint,
                id="notifications.W001",
            )
        )
    return warnings


def check_metrics_networks(app_configs=None, **kwargs):
    """notifications.E001: METRICS_ALLOWED_NETWORKS must be CIDR networks or addresses."""
    import ipaddress

    errors = []
    for value in getattr(settings, "METRICS_ALLOWED_NETWORKS", []):
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            errors.append(
                Error(f"METRICS_ALLOWED_NETWORKS: {exc}", hint="e.g. 10.0.0.0/8,::1", id="notifications.E001")
            )
    return errors

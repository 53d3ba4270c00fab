"""System checks: a typo in ALERTS_CHANNELS_BY_TYPE fails at start-up, not at notify time."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error


def check_alert_settings(app_configs=None, **kwargs):
    from alerts.models import AlertType
    from alerts.services import CHANNEL_NAMES

    errors = []
    by_type = getattr(settings, "ALERTS_CHANNELS_BY_TYPE", None)
    if not isinstance(by_type, dict):
        return [Error("ALERTS_CHANNELS_BY_TYPE must be a dict of alert type -> channel names", id="alerts.E001")]
    for alert_type, channels in by_type.items():
        if alert_type not in AlertType.values:
            errors.append(
                Error(
                    f"ALERTS_CHANNELS_BY_TYPE has unknown alert type {alert_type!r}",
                    hint=f"Use {', '.join(AlertType.values)}.",
                    id="alerts.E002",
                )
            )
        for name in channels:
            if name not in CHANNEL_NAMES:
                errors.append(
                    Error(
                        f"ALERTS_CHANNELS_BY_TYPE[{alert_type!r}] names unknown channel {name!r}",
                        hint=f"Use {', '.join(CHANNEL_NAMES)}.",
                        id="alerts.E003",
                    )
                )
    days = getattr(settings, "ALERTS_ARCHIVE_AFTER_DAYS", None)
    if not isinstance(days, int) or days < 1:
        errors.append(Error("ALERTS_ARCHIVE_AFTER_DAYS must be a positive number of days", id="alerts.E004"))
    return errors

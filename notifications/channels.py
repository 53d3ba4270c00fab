"""The delivery channels and the names each surface gives them.

Delivery rows, the IBL documents and templates call push `push_notification`;
the bulk document, the alerts settings and `NOTIFICATION_BACKENDS` call it
`push`. Every translation between the two goes through this module.
"""

from __future__ import annotations

from django.db import models


class Channel(models.TextChoices):
    """Delivery channels, named as the IBL document (and every delivery row) names them."""

    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push_notification", "Push notification"
    IN_APP = "in_app", "In-app"


class ScheduledChannel(models.TextChoices):
    """Channels as the bulk document names them (`push`, not `push_notification`).

    These are also the keys of `settings.NOTIFICATION_BACKENDS` and the channel
    names of `ALERTS_CHANNELS_BY_TYPE`.
    """

    SMS = "sms", "SMS"
    EMAIL = "email", "Email"
    PUSH = "push", "Push"
    IN_APP = "in_app", "In-app"


# The delivery rows' channel for each bulk (and settings) channel name.
DELIVERY_CHANNEL: dict[str, str] = {
    ScheduledChannel.SMS: Channel.SMS,
    ScheduledChannel.EMAIL: Channel.EMAIL,
    ScheduledChannel.PUSH: Channel.PUSH,
    ScheduledChannel.IN_APP: Channel.IN_APP,
}

# The settings key (`NOTIFICATION_BACKENDS`) of each delivery channel.
SETTINGS_KEY: dict[str, str] = {row: str(name) for name, row in DELIVERY_CHANNEL.items()}


def settings_key(channel: str) -> str:
    """The `NOTIFICATION_BACKENDS` key of `channel`, given as a row or a settings name."""
    return SETTINGS_KEY.get(channel, channel)


def delivery_channel(name: str) -> str:
    """The delivery rows' channel for a bulk/settings name; KeyError for an unknown one."""
    return DELIVERY_CHANNEL[name]

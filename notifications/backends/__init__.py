"""Channel backends, named per channel in settings.NOTIFICATION_BACKENDS."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

# Delivery rows say "push_notification" (the IBL document's name); settings say "push".
SETTINGS_KEY = {"push_notification": "push"}


@cache
def _backend_class(channel: str):
    channel = SETTINGS_KEY.get(channel, channel)
    config = settings.NOTIFICATION_BACKENDS.get(channel)
    if not config or "BACKEND" not in config:
        raise ImproperlyConfigured(f"NOTIFICATION_BACKENDS[{channel!r}] must name a BACKEND")
    try:
        return import_string(config["BACKEND"])
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"NOTIFICATION_BACKENDS[{channel!r}]['BACKEND'] = {config['BACKEND']!r} cannot be imported: {exc}"
        ) from exc


def get_backend(channel: str):
    """A fresh backend instance for `channel` (backends hold connections)."""
    cls = _backend_class(channel)
    options = settings.NOTIFICATION_BACKENDS[SETTINGS_KEY.get(channel, channel)].get("OPTIONS", {})
    backend = cls(**options)
    backend.channel = channel
    return backend


def _reset(setting, **kwargs):
    if setting == "NOTIFICATION_BACKENDS":
        _backend_class.cache_clear()


setting_changed.connect(_reset)

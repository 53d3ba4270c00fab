"""Channel backends, named per channel in settings.NOTIFICATION_BACKENDS."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string


@cache
def _backend_class(channel: str):
    config = settings.NOTIFICATION_BACKENDS.get(channel)
    if not config or "BACKEND" not in config:
        raise ImproperlyConfigured(f"NOTIFICATION_BACKENDS[{channel!r}] must name a BACKEND")
    try:
        return import_string(config["BACKEND"])
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"NOTIFICATION_BACKENDS[{channel!r}]['BACKEND'] = {config['BACKEND']!r} cannot be imported: {exc}"
        ) from exc


def backend_class(channel: str):
    """The backend class configured for `channel` (a settings key: email, sms, push, in_app)."""
    return _backend_class(channel)


def get_backend(channel: str):
    """A fresh backend instance for `channel` (backends hold connections)."""
    cls = _backend_class(channel)
    options = settings.NOTIFICATION_BACKENDS[channel].get("OPTIONS", {})
    backend = cls(**options)
    backend.channel = channel
    return backend


def _reset(setting, **kwargs):
    if setting == "NOTIFICATION_BACKENDS":
        _backend_class.cache_clear()


setting_changed.connect(_reset)

"""Channel backends, named per channel in settings.NOTIFICATION_BACKENDS."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from notifications import channels


def _settings_key(channel: str) -> str:
    # A key configured as given wins; otherwise a row's channel name maps to its settings key.
    if channel not in settings.NOTIFICATION_BACKENDS:
        return channels.settings_key(channel)
    return channel


@cache
def _backend_class(key: str):
    config = settings.NOTIFICATION_BACKENDS.get(key)
    if not config or "BACKEND" not in config:
        raise ImproperlyConfigured(f"NOTIFICATION_BACKENDS[{key!r}] must name a BACKEND")
    try:
        return import_string(config["BACKEND"])
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"NOTIFICATION_BACKENDS[{key!r}]['BACKEND'] = {config['BACKEND']!r} cannot be imported: {exc}"
        ) from exc


def backend_class(channel: str):
    """The backend class configured for `channel` (a settings key: email, sms, push, in_app)."""
    return _backend_class(channel)


def channel_backends() -> dict[str, dict]:
    """Each configured channel's backend as /healthz shows it: name, and whether it really delivers."""
    return {key: _backend_class(key).describe() for key in settings.NOTIFICATION_BACKENDS}


def get_backend(channel: str):
    """A fresh backend instance for `channel` (backends hold connections)."""
    key = _settings_key(channel)
    cls = _backend_class(key)
    options = settings.NOTIFICATION_BACKENDS[key].get("OPTIONS", {})
    backend = cls(**options)
    backend.channel = channel
    return backend


def _reset(setting, **kwargs):
    if setting == "NOTIFICATION_BACKENDS":
        _backend_class.cache_clear()


setting_changed.connect(_reset)

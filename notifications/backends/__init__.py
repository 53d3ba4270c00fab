"""Channel backends, named per channel in settings.NOTIFICATION_BACKENDS.

A channel names one backend (`{"BACKEND": "dotted.path", "OPTIONS": {...}}`)
or several providers in order (a list of such entries, each with an optional
`NAME`, default the backend's short name such as `afromessage`): the first is
the primary, the others take over deliveries it clearly refused while its
circuit is open (see `notifications.circuits` and `pipeline/failover.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from notifications import channels


@dataclass(frozen=True)
class Provider:
    """One configured backend of a channel."""

    name: str
    cls: type
    options: dict = field(default_factory=dict, hash=False, compare=False)


def _settings_key(channel: str) -> str:
    # A key configured as given wins; otherwise a row's channel name maps to its settings key.
    if channel not in settings.NOTIFICATION_BACKENDS:
        return channels.settings_key(channel)
    return channel


@cache
def _import(key: str, path: str):
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"NOTIFICATION_BACKENDS[{key!r}]: backend {path!r} cannot be imported: {exc}"
        ) from exc


def _entries(key: str) -> list[dict]:
    config = settings.NOTIFICATION_BACKENDS.get(key)
    entries = list(config) if isinstance(config, list | tuple) else [config]
    if not entries or not all(isinstance(e, dict) and e.get("BACKEND") for e in entries):
        raise ImproperlyConfigured(
            f"NOTIFICATION_BACKENDS[{key!r}] must name a BACKEND, or be a list of entries that each name one"
        )
    return entries


def providers(channel: str) -> list[Provider]:
    """The providers configured for `channel`, in order (one for the single-backend form)."""
    key = _settings_key(channel)
    found: list[Provider] = []
    for entry in _entries(key):
        cls = _import(key, entry["BACKEND"])
        name = str(entry.get("NAME") or cls.describe()["backend"])
        if any(p.name == name for p in found):
            raise ImproperlyConfigured(
                f"NOTIFICATION_BACKENDS[{key!r}] names provider {name!r} twice; give each entry its own NAME"
            )
        found.append(Provider(name=name, cls=cls, options=dict(entry.get("OPTIONS") or {})))
    return found


def backend_class(channel: str):
    """The (primary) backend class configured for `channel` (a settings key: email, sms, push, in_app)."""
    return providers(channel)[0].cls


def channel_backends() -> dict[str, dict]:
    """Each configured channel's backend as /healthz shows it: name, and whether it really delivers.

    A channel with several providers shows its primary's name, is real when
    any of them is, and lists them all under `providers`.
    """
    shown = {}
    for key in settings.NOTIFICATION_BACKENDS:
        found = providers(key)
        info = dict(found[0].cls.describe())
        if len(found) > 1:
            described = [{"name": p.name, **p.cls.describe()} for p in found]
            info["real"] = any(d["real"] for d in described)
            info["providers"] = described
        shown[key] = info
    return shown


def provider_backend(channel: str, provider: Provider):
    """A fresh instance of one provider's backend (backends hold connections)."""
    backend = provider.cls(**provider.options)
    backend.channel = channel
    return backend


def get_backend(channel: str):
    """A fresh instance of `channel`'s (primary) backend."""
    return provider_backend(channel, providers(channel)[0])


def _reset(setting, **kwargs):
    if setting == "NOTIFICATION_BACKENDS":
        _import.cache_clear()


setting_changed.connect(_reset)

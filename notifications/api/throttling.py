"""Rate limits of every API surface: per user, per platform, per client address, per scope.

Each throttle reads its rate from `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`
at request time (DRF's own classes freeze the rates at import, which hides
settings overrides). A throttled request raises DRF's `Throttled`, which
`notifications.api.errors.exception_handler` renders in the surface's own
format with a `Retry-After` header.

The platform throttle counts a request against a platform only when the
caller belongs to it: otherwise anyone could spend another tenant's budget by
calling its paths and collecting 404s.
"""

from __future__ import annotations

from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from notifications.models import Membership

MEMBERSHIP_CACHE_SECONDS = 60
PATH_PLATFORM_KWARGS = ("org", "platform_key")


class _SettingsRate(SimpleRateThrottle):
    def __init__(self):
        # Rates are looked up per request in allow_request.
        pass

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


class UserRateThrottle(_SettingsRate):
    """Each authenticated user's requests, across all surfaces."""

    scope = "user"

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.pk}


class AnonRateThrottle(_SettingsRate):
    """Requests without a user (public links such as unsubscribe), per client address."""

    scope = "anon"

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def _member_keys(user) -> set[str]:
    key = f"throttle:memberships:{user.pk}"
    keys = cache.get(key)
    if keys is None:
        keys = set(
            Membership.objects.filter(user=user, is_active=True, platform__is_active=True).values_list(
                "platform__key", flat=True
            )
        )
        cache.set(key, keys, MEMBERSHIP_CACHE_SECONDS)
    return keys


def request_platform_key(request, view) -> str | None:
    """The platform a request acts on, for counting: the path's, the X-Platform header's, or the only one."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    keys = _member_keys(user)
    kwargs = getattr(view, "kwargs", None) or {}
    for name in PATH_PLATFORM_KWARGS:
        if kwargs.get(name):
            return kwargs[name] if kwargs[name] in keys else None
    wanted = request.META.get("HTTP_X_PLATFORM", "").strip()
    if wanted:
        return wanted if wanted in keys else None
    return next(iter(keys)) if len(keys) == 1 else None


class PlatformRateThrottle(_SettingsRate):
    """All users of one platform together: one tenant cannot starve the others."""

    scope = "platform"

    def get_cache_key(self, request, view):
        key = request_platform_key(request, view)
        if key is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": key}


class ScopedRateThrottle(_SettingsRate):
    """A view's own limit (`throttle_scope = "template_test"`), per user or client address."""

    scope_attr = "throttle_scope"

    def allow_request(self, request, view):
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

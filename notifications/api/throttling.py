"""Rate limits of every API surface: per user, per platform, per client address, per scope.

One throttle class (`RateLimits`) applies every limit a request falls under
in one Redis round trip: a Lua script keeps a sliding log per limit (a sorted
set of request times, Redis's own clock) and, only when every limit has room,
records the request in all of them. A request refused by one limit spends
none of the others, and the `Retry-After` is the time until the fullest limit
has room again. Rates come from `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` at
request time (DRF's own classes freeze them at import, which hides settings
overrides). A throttled request raises DRF's `Throttled`, which
`notifications.api.errors.exception_handler` renders in the surface's own
format with a `Retry-After` header.

The limits:

- `user`: each authenticated user, across all surfaces;
- `anon`: requests without a user (public links such as unsubscribe), per client address;
- `platform`: all users of one platform together, so one tenant cannot starve
  the others. A request counts against a platform only when the caller belongs
  to it (the permission classes, which run before throttles, resolved it as
  `request.platform`; otherwise the caller's credentials say which): anyone
  could otherwise spend another tenant's budget by calling its paths and
  collecting 404s;
- a view's own scope (`throttle_scope = "template_test"`), per user or client address.
"""

from __future__ import annotations

import secrets
from functools import cache

from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from notifications import redis_cache
from notifications.models import Membership
from notifications.permissions import request_credentials

PATH_PLATFORM_KWARGS = ("org", "platform_key")

# KEYS: one sorted set per limit. ARGV: a unique member suffix, then per limit
# its number of requests and its window in microseconds. Returns 0 when the
# request was recorded, else the microseconds until every limit has room.
_SLIDING_LOG = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local w = tonumber(oldest[2]) + window - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, now .. ':' .. ARGV[1])
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[2 * i + 1]) / 1000))
end
return 0
"""


def _script():
    # The cache's Redis: every process of an installation shares the counters.
    return _script_on(redis_cache.client())


@cache
def _script_on(client):
    # Per client: a script registered on one must not outlive it (tests replace the cache's Redis).
    return client.register_script(_SLIDING_LOG)


_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse(rate: str) -> tuple[int, int]:
    """`"<n>/<second|minute|hour|day>"` (as DRF reads it) as (requests, window in microseconds)."""
    num, period = rate.split("/")
    return int(num), _PERIODS[period[0]] * 1_000_000


def request_platform_key(request, view) -> str | None:
    """The platform a request counts against: one the caller belongs to, or None."""
    platform = getattr(request, "platform", None)
    if platform is not None:
        return platform.key  # resolved and checked by the permission class
    creds = request_credentials(request)
    if creds is not None:
        keys = {p.key for p in creds.platforms.values()}
    else:
        keys = set(
            Membership.objects.filter(user=request.user, is_active=True, platform__is_active=True).values_list(
                "platform__key", flat=True
            )
        )
    kwargs = getattr(view, "kwargs", None) or {}
    for name in PATH_PLATFORM_KWARGS:
        if kwargs.get(name):
            return kwargs[name] if kwargs[name] in keys else None
    wanted = request.META.get("HTTP_X_PLATFORM", "").strip()
    if wanted:
        return wanted if wanted in keys else None
    return next(iter(keys)) if len(keys) == 1 else None


class RateLimits(BaseThrottle):
    """Every limit of the request, checked and recorded in one Redis round trip."""

    def limits(self, request, view) -> list[tuple[str, str]]:
        """(scope, identity) of each limit that applies to this request."""
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            found = [("user", str(user.pk))]
            platform_key = request_platform_key(request, view)
            if platform_key:
                found.append(("platform", platform_key))
            ident = str(user.pk)
        else:
            ident = self.get_ident(request)
            found = [("anon", ident)]
        scope = getattr(view, "throttle_scope", None)
        if scope:
            found.append((scope, ident))
        return found

    def allow_request(self, request, view) -> bool:
        self._wait = None
        rates = api_settings.DEFAULT_THROTTLE_RATES
        keys, args = [], [secrets.token_hex(4)]
        for scope, ident in self.limits(request, view):
            rate = rates.get(scope)
            if rate is None:
                continue
            keys.append(redis_cache.key(f"throttle:{scope}:{ident}"))
            args.extend(_parse(rate))
        if not keys:
            return True
        wait_us = int(_script()(keys=keys, args=args))
        if wait_us <= 0:
            return True
        self._wait = wait_us / 1_000_000
        return False

    def wait(self) -> float | None:
        return self._wait

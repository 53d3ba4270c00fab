"""The cache's Redis as one client per process, for the request path's own keys.

Django's cache API builds a new `redis.Redis` (and its table of response
callbacks) for every call; the credentials cache and the rate limits run on
every request, so they keep one client, sharing one connection pool. Keys carry
the cache's `KEY_PREFIX`, so installations sharing a Redis keep apart, and the
cache's `clear()` (a FLUSHDB) drops them too.
"""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings
from django.utils.module_loading import import_string


@cache
def client() -> redis.Redis:
    # The cache's own pool class and options: its Sentinel settings when it has them.
    options = dict(settings.CACHES["default"].get("OPTIONS", {}))
    pool_class = options.pop("pool_class", redis.ConnectionPool)
    if isinstance(pool_class, str):
        pool_class = import_string(pool_class)
    return redis.Redis(connection_pool=pool_class.from_url(settings.CACHES["default"]["LOCATION"], **options))


def key(name: str) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    return f"{prefix}:{name}" if prefix else name

"""Which of a platform's endpoints take which event types, cached briefly per process.

Kept `WEBHOOK_SUBSCRIPTION_CACHE_SECONDS`; a change made in this process
(an endpoint saved, deleted or disabled) drops the platform's entry at once,
other processes see it when their entry expires.
"""

from __future__ import annotations

import time

from django.conf import settings

from webhooks.models import WebhookEndpoint

# platform id -> (expires at, {event type: [endpoint ids]})
_SUBSCRIPTIONS: dict[int, tuple[float, dict[str, list[int]]]] = {}


def subscriptions_for(platform_id: int) -> dict[str, list[int]]:
    """Event type -> ids of the platform's active endpoints subscribed to it (cached briefly)."""
    now = time.monotonic()
    cached = _SUBSCRIPTIONS.get(platform_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    by_type: dict[str, list[int]] = {}
    rows = WebhookEndpoint.objects.filter(platform_id=platform_id, is_active=True).values_list("pk", "event_types")
    for pk, types in rows:
        for name in types or ():
            by_type.setdefault(name, []).append(pk)
    _SUBSCRIPTIONS[platform_id] = (now + float(settings.WEBHOOK_SUBSCRIPTION_CACHE_SECONDS), by_type)
    return by_type


def subscriptions_forget(platform_id: int | None = None) -> None:
    """Drop the cached subscriptions of one platform (an endpoint changed), or of all."""
    if platform_id is None:
        _SUBSCRIPTIONS.clear()
    else:
        _SUBSCRIPTIONS.pop(platform_id, None)


def subscribed(event_type: str, platform_id: int) -> bool:
    """The lifecycle interest: does an active endpoint of this platform take this event type?"""
    return bool(subscriptions_for(platform_id).get(event_type))

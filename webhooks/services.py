"""Writes of a platform's webhook endpoints: every URL checked, every secret made here."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

from notifications.errors import Conflict, InvalidInput
from notifications.models import Platform
from webhooks import targets
from webhooks.events import EVENT_TYPES
from webhooks.models import WebhookEndpoint, secret_generate


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, fields={field: [message]})


def event_types_clean(event_types: Sequence[str]) -> list[str]:
    unknown = [name for name in event_types if name not in EVENT_TYPES]
    if unknown:
        known = ", ".join(EVENT_TYPES)
        raise _invalid("event_types", f"Unknown event types: {', '.join(map(str, unknown))}. Known: {known}.")
    if not event_types:
        raise _invalid("event_types", "Subscribe to at least one event type.")
    return sorted(set(event_types), key=EVENT_TYPES.index)


def url_clean(url: str) -> str:
    """The URL once it resolves to public addresses only (DNS included); InvalidInput otherwise."""
    try:
        return targets.endpoint_url_check(url)
    except targets.EndpointRefused as exc:
        raise _invalid("url", exc.message) from None


def endpoint_create(
    *, platform: Platform, url: str, event_types: Sequence[str], description: str = "", is_active: bool = True
) -> WebhookEndpoint:
    """A new endpoint with a fresh `whsec_` secret (read it once from `endpoint.secret`)."""
    url = url_clean(url)
    event_types = event_types_clean(event_types)
    with transaction.atomic():
        # Serialise creations per platform, so the limit holds under concurrent requests.
        Platform.objects.select_for_update().filter(pk=platform.pk).first()
        if WebhookEndpoint.objects.filter(platform=platform).count() >= settings.WEBHOOK_MAX_ENDPOINTS:
            raise Conflict(f"A platform has at most {settings.WEBHOOK_MAX_ENDPOINTS} webhook endpoints.")
        endpoint = WebhookEndpoint(
            platform=platform, url=url, event_types=event_types, description=description, is_active=is_active
        )
        endpoint.secret_set(secret_generate())
        endpoint.save()
    return endpoint


def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    """Change what is given; enabling a disabled endpoint clears its failing streak."""
    if url is not None:
        endpoint.url = url_clean(url)
    if event_types is not None:
        endpoint.event_types = event_types_clean(event_types)
    if description is not None:
        endpoint.description = description
    if is_active is not None and is_active != endpoint.is_active:
        endpoint.is_active = is_active
        if is_active:
            endpoint.failing_since = None
            endpoint.disabled_at = None
            endpoint.disabled_reason = ""
    endpoint.save()
    return endpoint


def endpoint_secret_rotate(*, endpoint: WebhookEndpoint) -> str:
    """A new secret, effective for the next attempt; the old one stops working at once."""
    secret = secret_generate()
    endpoint.secret_set(secret)
    endpoint.save(update_fields=["secret_encrypted", "updated_at"])
    return secret


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """The endpoint and its messages and attempts."""
    endpoint.delete()

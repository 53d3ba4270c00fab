"""Reads of webhook endpoints and messages, always from the caller's platform."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from notifications.errors import NotFound
from notifications.models import Platform
from webhooks.models import WebhookEndpoint, WebhookMessage


def endpoints_for(*, platform: Platform) -> QuerySet:
    return WebhookEndpoint.objects.filter(platform=platform).order_by("id")


def endpoint_get(*, platform: Platform, endpoint_id: int) -> WebhookEndpoint:
    """The platform's endpoint; another platform's is a NotFound like one that does not exist."""
    endpoint = endpoints_for(platform=platform).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("Webhook endpoint not found.")
    return endpoint


def messages_for(*, endpoint: WebhookEndpoint, status: str | None = None, event_type: str | None = None) -> QuerySet:
    qs = WebhookMessage.objects.filter(endpoint=endpoint, platform_id=endpoint.platform_id)
    if status:
        qs = qs.filter(status=status)
    if event_type:
        qs = qs.filter(event_type=event_type)
    return qs.order_by("-created_at", "id")


def message_get(*, endpoint: WebhookEndpoint, message_id: uuid.UUID) -> WebhookMessage:
    message = messages_for(endpoint=endpoint).filter(pk=message_id).first()
    if message is None:
        raise NotFound("Webhook message not found.")
    return message

"""Which channel fallback and escalation a send's rows are written under (see `fallback`).

The rules come from the caller's `fallback_channel` (bulk requests, scheduled
jobs), else the platform's policy for the notification type, which an app
registers here (`register_policy_lookup`; templates_app keeps it with the
template's other per-platform settings, inheriting the shipped default like
them). What a send was written under is kept per (source, type) in
`DeliveryPlan`: dispatch reads it when a delivery fails for good, the
`escalations` due-work source when in-app rows fall due.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

import notifications.pipeline.eligibility as eligibility
from notifications.channels import Channel
from notifications.models import DeliveryPlan, DeliveryRule, Platform

FALLBACK, ESCALATION = str(DeliveryRule.FALLBACK.value), str(DeliveryRule.ESCALATION.value)
# Channels whose delivery can fail, and so fall back; in-app rows are the delivery and never fail.
FALLS_BACK = (str(Channel.PUSH), str(Channel.SMS), str(Channel.EMAIL))
NO_DEVICE = "No active push device"


@dataclass(frozen=True)
class Policy:
    """What happens to one notification type's deliveries that do not get through."""

    # {channel: the channel it falls back to}, delivery-row channel names.
    fallback: dict[str, str] = field(default_factory=dict)
    escalation_channel: str = ""
    escalation_after_seconds: int | None = None

    @property
    def escalates(self) -> bool:
        return bool(self.escalation_channel and self.escalation_after_seconds)

    def __bool__(self) -> bool:
        return bool(self.fallback) or self.escalates


NO_POLICY = Policy()

# lookup(platform_id=, notification_types=) -> {type: Policy} for the types that have one
PolicyLookup = Callable[..., dict[str, Policy]]
_LOOKUPS: list[PolicyLookup] = []


def register_policy_lookup(fn: PolicyLookup) -> PolicyLookup:
    """Registered in an AppConfig.ready() by the app that stores per-type policies (the core cannot import it)."""
    if fn not in _LOOKUPS:
        _LOOKUPS.append(fn)
    return fn


def policies_for(*, platform_id: int, notification_types: Collection[str]) -> dict[str, Policy]:
    found: dict[str, Policy] = {}
    for fn in list(_LOOKUPS):
        for type_, policy in fn(platform_id=platform_id, notification_types=notification_types).items():
            found.setdefault(type_, policy)
    return found


def explicit(fallback_channel: str, channels: Iterable[str]) -> dict[str, str]:
    """A caller's one `fallback_channel` as a fallback map over the send's channels."""
    if not fallback_channel:
        return {}
    return {str(c): fallback_channel for c in channels if str(c) in FALLS_BACK and str(c) != fallback_channel}


def send_policy(policy: Policy, *, fallback_channel: str, channels: Sequence[str], allowed: Collection[str]) -> Policy:
    """The policy one send's rows of one type are written under.

    The caller's `fallback_channel` wins over the type's fallback; fallbacks
    that point at a channel the platform does not allow are dropped.
    """
    fallback = {**policy.fallback, **explicit(fallback_channel, channels)}
    fallback = {c: to for c, to in fallback.items() if c in channels and to in allowed and to != c}
    escalates = policy.escalates and str(Channel.IN_APP) in channels and policy.escalation_channel in allowed
    return Policy(
        fallback=fallback,
        escalation_channel=policy.escalation_channel if escalates else "",
        escalation_after_seconds=policy.escalation_after_seconds if escalates else None,
    )


def allowed_channels(platform: Platform) -> tuple[str, ...]:
    return eligibility.platform_channels(platform=platform, channels=[str(c) for c in Channel])


# --- plans ------------------------------------------------------------------------


def plans_write(plans: Iterable[tuple[int, str, str, Policy]], *, now: datetime) -> None:
    """Keep the policies a send's rows were written under (one row per source and type, upserted).

    A later chunk of the same send moves the escalation's due time to its own
    rows' (the sweep looks again for rows younger than the wait anyway).
    """
    rows = [
        DeliveryPlan(
            platform_id=platform_id,
            source=source,
            notification_type=type_,
            fallback=dict(policy.fallback),
            escalation_channel=policy.escalation_channel,
            escalation_after_seconds=policy.escalation_after_seconds,
            escalation_due_at=now + timedelta(seconds=policy.escalation_after_seconds) if policy.escalates else None,
        )
        for platform_id, source, type_, policy in plans
    ]
    if rows:
        DeliveryPlan.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["source", "notification_type"],
            update_fields=["fallback", "escalation_channel", "escalation_after_seconds", "escalation_due_at"],
        )


def delivery_plans_purge(*, now: datetime | None = None) -> int:
    """Drop the plans of sends older than DELIVERY_PLAN_RETENTION_DAYS that no escalation waits on.

    By then every delivery of the send is long sent or failed (retries last
    hours), so nothing will read its fallback again.
    """
    days = getattr(settings, "DELIVERY_PLAN_RETENTION_DAYS", 7)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = DeliveryPlan.objects.filter(created_at__lt=cutoff, escalation_due_at__isnull=True).delete()
    return deleted


def type_policy(cache: dict, *, platform_id: int, notification_type: str) -> Policy:
    """The platform's policy for one type, looked up once per `cache` (a send, or many sends written together)."""
    key = (platform_id, notification_type)
    if key not in cache:
        cache[key] = policies_for(platform_id=platform_id, notification_types=[notification_type]).get(
            notification_type, NO_POLICY
        )
    return cache[key]

"""What happened to notifications and deliveries, announced for whoever listens.

The core and the apps send these Django signals at the moment something
happened (after commit where the change is transactional); listeners such as
outbound webhooks and metrics connect to them in their `AppConfig.ready()`, so
the code that makes a change never imports the code that reports it.

Every signal is sent with keyword arguments `platform_id` (int) and `payload`
(a JSON-serialisable dict describing the event, ids as strings); the event's
name is the signal's `name` attribute below.

Announcing is cheap when nobody cares: a listener registers an interest
(`register_interest`), and code that would announce many events at once (a
fan-out's `notification.created`) asks `wanted(...)` first and skips building
payloads nobody subscribed to. A listener that wants everything registers an
interest that always answers True. `announce_many` sends a batch inside one
transaction, so a listener that writes after commit writes the batch at once.

Events about many notification rows at once (a fan-out's `notification.created`,
a dispatch batch's `delivery.sent`) have a bulk form, `announce_notifications`:
one signal call with `payload=None` and `notification_ids=[...]`; a listener
reads the rows when it records them and builds each event's payload with
`notification_payload` (the same shape as the single form), so the sender pays
for a list of ids, not for a hundred thousand dicts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)


class LifecycleSignal(Signal):
    def __init__(self, name: str):
        super().__init__()
        self.name = name


notification_created = LifecycleSignal("notification.created")
notification_read = LifecycleSignal("notification.read")
delivery_sent = LifecycleSignal("delivery.sent")
delivery_failed = LifecycleSignal("delivery.failed")
delivery_delivered = LifecycleSignal("delivery.delivered")
delivery_bounced = LifecycleSignal("delivery.bounced")
delivery_opened = LifecycleSignal("delivery.opened")
scheduled_job_finished = LifecycleSignal("scheduled_job.finished")
build_completed = LifecycleSignal("build.completed")
digest_sent = LifecycleSignal("digest.sent")

ALL = (
    notification_created,
    notification_read,
    delivery_sent,
    delivery_failed,
    delivery_delivered,
    delivery_bounced,
    delivery_opened,
    scheduled_job_finished,
    build_completed,
    digest_sent,
)


# Columns of a notification row its events carry; delivery events carry the outcome too.
NOTIFICATION_FIELDS = ("channel", "source", "notification_type", "user_id")
DELIVERY_FIELDS = (*NOTIFICATION_FIELDS, "delivery_status", "attempts", "error", "provider_message_id")
DELIVERY_SIGNALS = frozenset(
    {"delivery.sent", "delivery.failed", "delivery.delivered", "delivery.bounced", "delivery.opened"}
)


def payload_fields(event_type: str) -> tuple[str, ...]:
    return DELIVERY_FIELDS if event_type in DELIVERY_SIGNALS else NOTIFICATION_FIELDS


def notification_payload(event_type: str, row: dict) -> dict:
    """The payload of an event about one notification row (`row` holds `id` and `payload_fields(event_type)`)."""
    payload = {"notification_id": str(row["id"])}
    for name in payload_fields(event_type):
        value = row[name]
        if name == "user_id":
            value = None if value is None else str(value)
        elif name == "error":
            value = (value or "")[:300]
        payload[name] = value
    return payload


def announce_notifications(signal: LifecycleSignal, *, platform_id: int, notification_ids: list) -> None:
    """The bulk form: one signal call for events about many rows (`payload=None`, `notification_ids=`)."""
    if notification_ids:
        signal.send_robust(sender=signal.name, platform_id=platform_id, payload=None, notification_ids=notification_ids)


def announce(signal: LifecycleSignal, *, platform_id: int, payload: dict) -> None:
    """Send `signal` now; a listener's failure is logged, never the sender's problem."""
    signal.send_robust(sender=signal.name, platform_id=platform_id, payload=payload)


# interest(event name, platform id) -> True when a listener would act on such an event.
_INTERESTS: list[Callable[[str, int], bool]] = []


def register_interest(interest: Callable[[str, int], bool]) -> None:
    """Registered by listeners in their AppConfig.ready()."""
    if interest not in _INTERESTS:
        _INTERESTS.append(interest)


def wanted(signal: LifecycleSignal, *, platform_id: int) -> bool:
    """True when some listener cares about `signal` on this platform (each listener answers from a cache)."""
    for interest in _INTERESTS:
        try:
            if interest(signal.name, platform_id):
                return True
        except Exception:
            # A broken interest check must not stop the change itself; it only costs the announcement.
            logger.exception("asking whether %s is wanted failed", signal.name)
    return False


def announce_many(signal: LifecycleSignal, *, platform_id: int, payloads: Iterable[dict]) -> None:
    """`announce` each payload, in one transaction: listeners that write after commit write them together."""
    with transaction.atomic():
        for payload in payloads:
            announce(signal, platform_id=platform_id, payload=payload)

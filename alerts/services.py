"""Writes of the alerts app: create, update, read, delete, archive, notify.

Scheduling rules (the sweep claims alerts whose `due_at` has passed):
- an alert is due at `notify_at`; an event without one at its `scheduled_at`;
  a new unread alert without either at once;
- moving that time into the future starts a new schedule (a new generation),
  which is delivered once more even if the old one already went out;
- moving it to another past time does not re-send what was already sent;
- clearing it, or deleting the alert, cancels what has not gone out yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.html import escape, linebreaks

from alerts.models import Alert, AlertType
from alerts.selectors import alerts_archivable
from notifications.channels import DELIVERY_CHANNEL, Channel
from notifications.models import Level, Platform
from notifications.pipeline import Message, Recipient, SendResult, notification_send
from notifications.pipeline.policies import NO_POLICY, policies_for
from notifications.pipeline.retry import DELIVERIES
from notifications.scheduler import claim_rows, first_due, oldest
from notifications.selectors import push_devices_for
from templates_app.messages import renderer_for

logger = logging.getLogger(__name__)

# A send that left deliveries pending (a provider asked us to retry) is tried
# again after this long; the pipeline skips everything already sent.

# Setting names of channels -> the pipeline's row channels.
CHANNEL_NAMES = DELIVERY_CHANNEL

LEVEL_FOR_TYPE = {AlertType.INFO: Level.INFO, AlertType.WARNING: Level.WARNING, AlertType.CRITICAL: Level.ERROR}

# Fields of the API a caller may change.
EDITABLE = ("title", "message", "type", "is_read", "is_event", "scheduled_at", "notify_at")


def _wanted_due(alert: Alert) -> datetime | None:
    """When the alert's notification should go out, from its own fields."""
    if alert.notify_at is not None:
        return alert.notify_at
    if alert.is_event:
        return alert.scheduled_at
    return None


def _reschedule(alert: Alert, due: datetime | None, *, now: datetime) -> None:
    """Point the alert's notification at `due`, starting a new schedule when it moves ahead."""
    if due == alert.due_at:
        return
    alert.due_at = due
    if due is not None and due > now:
        # A fresh schedule: whatever the old one sent, this one is sent once more.
        alert.notify_generation += 1
        alert.notified_at = None
        alert.claimed_until = None


def alert_create(
    *,
    platform: Platform,
    user,
    title: str,
    message: str,
    type: str = AlertType.INFO,
    is_read: bool = False,
    is_event: bool = False,
    scheduled_at: datetime | None = None,
    notify_at: datetime | None = None,
    created_by=None,
) -> Alert:
    now = timezone.now()
    alert = Alert(
        platform=platform,
        user=user,
        created_by=created_by,
        title=title,
        message=message,
        type=type,
        is_read=is_read,
        read_at=now if is_read else None,
        is_event=is_event,
        scheduled_at=scheduled_at,
        notify_at=notify_at,
        created_at=now,
    )
    due = _wanted_due(alert)
    if due is None and not is_event and not is_read:
        # News the user has not seen yet: tell them now.
        due = now
    alert.due_at = due
    alert.save()
    return alert


def alert_update(*, alert: Alert, data: dict[str, Any]) -> Alert:
    """Apply `data` (model field names from EDITABLE) to the alert."""
    unknown = set(data) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    now = timezone.now()
    with transaction.atomic():
        # Locked so a concurrent update cannot lose a generation bump.
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        for field, value in data.items():
            setattr(alert, field, value)
        if "is_read" in data:
            if alert.is_read:
                alert.read_at = alert.read_at or now
            else:
                # Unread again: back in the default list.
                alert.read_at = None
                alert.archived_at = None
        if {"notify_at", "scheduled_at", "is_event"} & set(data):
            _reschedule(alert, _wanted_due(alert), now=now)
        alert.save()
    return alert


def alert_mark_read(*, alert: Alert) -> Alert:
    """Mark read and record when; reading it again keeps the first time."""
    if not alert.is_read:
        now = timezone.now()
        Alert.objects.filter(pk=alert.pk, is_read=False).update(is_read=True, read_at=now, updated_at=now)
        alert.refresh_from_db()
    return alert


def alerts_mark_all_read(*, platform: Platform, user) -> int:
    now = timezone.now()
    return (
        Alert.objects.live()
        .filter(platform=platform, user=user, is_read=False)
        .update(is_read=True, read_at=now, updated_at=now)
    )


def alert_delete(*, alert: Alert) -> None:
    """Soft delete: the alert leaves the API and its pending notification is cancelled."""
    alerts_delete(alerts=Alert.objects.filter(pk=alert.pk))


def alerts_delete(*, alerts) -> int:
    now = timezone.now()
    return alerts.filter(deleted_at__isnull=True).update(deleted_at=now, updated_at=now)


def alerts_restore(*, alerts) -> int:
    """Bring soft-deleted alerts back (the admin's restore action)."""
    return alerts.filter(deleted_at__isnull=False).update(deleted_at=None, updated_at=timezone.now())


def alerts_archive(
    *,
    now: datetime | None = None,
    older_than_days: int | None = None,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Archive read alerts created more than `older_than_days` ago; returns how many.

    Works in batches so a large backlog never holds one long lock on the table.
    """
    now = now or timezone.now()
    days = settings.ALERTS_ARCHIVE_AFTER_DAYS if older_than_days is None else older_than_days
    cutoff = now - timedelta(days=days)
    archivable = alerts_archivable(cutoff=cutoff)
    total = 0
    while True:
        ids = list(archivable.order_by("created_at").values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        # Re-check the condition: a user may have marked one unread meanwhile.
        n = archivable.filter(pk__in=ids).update(archived_at=now)
        total += n
        if progress is not None:
            progress(n)
        if len(ids) < batch_size:
            break
    return total


# --- timed notifications --------------------------------------------------------


def alerts_claim_due(*, now: datetime, limit: int, lease: timedelta) -> list[int]:
    """The scheduler's claim: due alerts no one holds, leased to this sweep."""
    queryset = Alert.objects.due(now).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
    return claim_rows(queryset, limit=limit, updates={"claimed_until": now + lease}, order_by=("due_at", "pk"))


def alerts_next_due(*, after: datetime, until: datetime) -> datetime | None:
    """When the next alert notification falls due in (after, until] (the sweep's follow-up)."""
    waiting = Alert.objects.filter(notified_at__isnull=True, deleted_at__isnull=True)
    return first_due(waiting, "due_at", after=after, until=until)


def alerts_oldest_due(*, now: datetime) -> datetime | None:
    """The `due_at` of the longest-waiting due alert no sweep holds (/healthz, /metrics)."""
    return oldest(Alert.objects.due(now).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)), "due_at")


def alert_channels(*, alert: Alert) -> list[str]:
    """In-app always; push, email and SMS when the type asks for them and the user can get them.

    A channel the user cannot get (push without an active device on the
    platform, email or SMS without the address) is asked for all the same when
    the platform's policy for the alert's type falls back from it ("push, else
    SMS"): the pipeline then writes the failed delivery and its fallback, as on
    every other send path.
    """
    configured = settings.ALERTS_CHANNELS_BY_TYPE.get(alert.type, ["in_app"])
    channels = [Channel.IN_APP]
    falls_back_from: set[str] | None = None  # looked up only for a channel the user cannot get
    for name in configured:
        channel = CHANNEL_NAMES[name]
        if channel in channels:
            continue
        if not _reachable(alert, channel):
            if falls_back_from is None:
                policies = policies_for(platform_id=alert.platform_id, notification_types=[_type_of(alert)])
                falls_back_from = set(policies.get(_type_of(alert), NO_POLICY).fallback)
            if channel not in falls_back_from:
                continue
        channels.append(channel)
    return channels


def _reachable(alert: Alert, channel: str) -> bool:
    # A platform's push switch is the pipeline's to apply (see notifications.pipeline.eligibility).
    if channel == Channel.PUSH:
        return push_devices_for(user=alert.user, platform=alert.platform).exists()
    if channel == Channel.EMAIL:
        return bool(alert.user.email)
    if channel == Channel.SMS:
        return bool(alert.user.phone_number)
    return True


def _type_of(alert: Alert) -> str:
    return "event_reminder" if alert.is_event else "alert"


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else ""


def alert_message(*, alert: Alert) -> Message:
    body = alert.message
    if alert.is_event and alert.scheduled_at is not None:
        body = f"{body}\n\nWhen: {_when(alert.scheduled_at, alert.user.timezone)}"
    return Message(
        title=alert.title,
        body=body,
        html=f"<p><strong>{escape(alert.title)}</strong></p>{linebreaks(body, autoescape=True)}",
        short_message=f"{alert.title}: {alert.message}"[:1000],
        notification_type=_type_of(alert),
        level=LEVEL_FOR_TYPE.get(alert.type, Level.INFO),
        # A critical alert goes through quiet hours and frequency caps (see notifications.pipeline.rules).
        critical=alert.type == AlertType.CRITICAL,
        context={"alert_id": alert.pk, "alert_type": alert.type, "is_event": alert.is_event},
        # Push data values must be strings.
        data={
            "alert_id": str(alert.pk),
            "alert_type": alert.type,
            "is_event": "true" if alert.is_event else "false",
            "scheduled_at": _iso(alert.scheduled_at),
        },
    )


def _when(value: datetime, zone_name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(zone_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = value.astimezone(zone)
    return f"{local:%a %d %b %Y, %H:%M} ({zone.key})"


def alert_notify(*, alert_id: int) -> SendResult | None:
    """Deliver one claimed alert's notification (the scheduler's `run`).

    Idempotent: the source key names the alert and its schedule generation, so
    a retry of the same schedule finds its rows and sends nothing twice.
    """
    alert = Alert.objects.select_related("user", "platform").filter(pk=alert_id).first()
    if alert is None:
        return None
    now = timezone.now()
    if alert.deleted_at is not None or alert.notified_at is not None or alert.due_at is None or alert.due_at > now:
        # Deleted, already sent or moved since the claim: nothing to do now.
        Alert.objects.filter(pk=alert.pk, notify_generation=alert.notify_generation).update(claimed_until=None)
        return None
    generation = alert.notify_generation
    channels = alert_channels(alert=alert)
    result = notification_send(
        platform=alert.platform,
        source=alert.source_key,
        channels=channels,
        recipients=[Recipient(user_id=alert.user_id)],
        render=renderer_for(platform=alert.platform, channels=channels, message=alert_message(alert=alert)),
    )
    done = Alert.objects.filter(pk=alert.pk, notify_generation=generation, notified_at__isnull=True)
    if result.pending:
        # Hold the claim until the retry; everything already sent stays sent.
        done.update(claimed_until=timezone.now() + DELIVERIES.backoff(1))
    else:
        # Conditional on the generation: a reschedule during the send keeps its new schedule.
        done.update(notified_at=now, claimed_until=None)
    return result

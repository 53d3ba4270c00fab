"""templates_app's part in the pipeline's delivery rules (see `notifications.pipeline.rules`).

Quiet hours: a member's own window (`QuietHours`, set through the
preferences API) or the platform's default (`Platform.quiet_hours_*`), read
in the member's time zone (`User.timezone`; the platform's `time_zone` for
recipients known only by an address).

Which notification types are critical lives with the types: the shipped
defaults flag them (`defaults.TypeDefault.critical`: security and account
messages, ...). A critical type cannot be switched off by a user and goes
through every delivery rule that holds messages back (quiet hours, frequency
caps).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import datetime

import notifications.pipeline.sql as sql
from notifications.channels import Channel
from notifications.models import DeliveryRule, Platform
from notifications.pipeline.rules import Decision, Rule
from notifications.zones import window_end
from templates_app import defaults
from templates_app.models import QuietHours


def critical_types_of(*, platform, types: Collection[str]) -> set[str]:
    """The critical types among `types` (registered with `rules.register_critical_types`)."""
    return set(types) & defaults.CRITICAL_TYPES


# Channels whose deliveries wait for the end of quiet hours; in-app is written
# at once (the inbox is silent by nature) and only its live message is hushed.
DEFERRED_CHANNELS = frozenset({Channel.SMS, Channel.PUSH, Channel.EMAIL})
SILENCED_CHANNELS = frozenset({Channel.IN_APP})
QUIET_HOURS_ORDER = 40
_RULED_CHANNELS = DEFERRED_CHANNELS | SILENCED_CHANNELS


def quiet_hours_apply(*, platform, channels) -> bool:
    """Only where some channel waits or goes silently, on a platform where somebody has quiet hours."""
    if not any(c in _RULED_CHANNELS for c in channels):
        return False
    settings_ = _platform_quiet_hours(platform)
    # Nobody on this platform has quiet hours: its chunks are not even shown to the rule.
    return settings_ is not None and (settings_[0] is not None or settings_[2])


def quiet_hours_decide(*, platform, rows: list, now: datetime) -> dict:
    """The quiet-hours rule: non-critical rows inside the recipient's quiet hours wait (or go silently).

    The members' time zones come with the rows (`Row.time_zone`, read by the
    write with the chunk's users); per chunk at most one query, the members'
    own windows, only if the platform has any. Each distinct (window, zone) is
    worked out once and its decisions built once and shared by its rows, so
    10k recipients in one zone cost one computation and a dict lookup each.
    """
    settings_ = _platform_quiet_hours(platform)
    if settings_ is None:
        return {}
    default, platform_zone, has_own = settings_
    if default is None and not has_own:
        return {}  # nobody on this platform has quiet hours: no query per chunk
    rows = [r for r in rows if not r.critical and r.channel in _RULED_CHANNELS]
    if not rows:
        return {}
    own = {}
    if has_own:
        user_ids = {r.user_id for r in rows if r.user_id is not None}
        if user_ids:
            own = {
                user_id: (start, end)
                for user_id, start, end in QuietHours.objects.filter(
                    platform_id=platform, user__any_of=user_ids
                ).values_list("user_id", "start", "end")
            }
    if default is None and not own:
        return {}
    # Rows written without their zones (a caller of `rules.decide` that had none): one query for those.
    unzoned = [r.user_id for r in rows if r.user_id is not None and not r.time_zone]
    zones = sql.time_zones(list(set(unzoned))) if unzoned else {}
    rule = str(DeliveryRule.QUIET_HOURS.value)
    # {(window, zone): (decision for a silenced channel, decision for a deferred one)}, or None outside the window.
    verdicts: dict[tuple, tuple | None] = {}
    decisions = {}
    for row in rows:
        user_id = row.user_id
        if user_id is None:
            key = (default, platform_zone)
        else:
            key = (own.get(user_id, default), row.time_zone or zones.get(user_id) or "UTC")
        if key[0] is None:
            continue
        if key in verdicts:
            verdict = verdicts[key]
        else:
            until = window_end(start=key[0][0], end=key[0][1], zone_name=key[1], now=now)
            verdict = verdicts[key] = None if until is None else (Decision.silence(rule), Decision.defer(rule, until))
        if verdict is not None:
            decisions[row.index] = verdict[0] if row.channel in SILENCED_CHANNELS else verdict[1]
    return decisions


# A platform's default window and zone, and whether any member has a window of
# their own, read once per process and platform for a few seconds: a batch of
# many small sends (scheduled jobs falling due together) asks once, not once per
# send. Saves and deletes of platforms and windows in this process drop it at
# once (`quiet_hours_forget`, connected in `TemplatesAppConfig.ready`); another
# process sees a change within `_CACHE_SECONDS`.
_CACHE_SECONDS = 5.0
_platforms: dict[int, tuple[float, tuple | None]] = {}


def _platform_quiet_hours(platform: int) -> tuple | None:
    cached = _platforms.get(platform)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    row = Platform.objects.filter(pk=platform).values("quiet_hours_start", "quiet_hours_end", "time_zone").first()
    value = None
    if row is not None:
        start, end = row["quiet_hours_start"], row["quiet_hours_end"]
        default = (start, end) if start is not None and end is not None else None
        value = (default, row["time_zone"], QuietHours.objects.filter(platform_id=platform).exists())
    _platforms[platform] = (time.monotonic() + _CACHE_SECONDS, value)
    return value


def quiet_hours_forget(sender=None, instance=None, **kwargs) -> None:
    """A platform or a member's window changed: the next send reads them again."""
    if instance is None:
        _platforms.clear()
    else:
        _platforms.pop(getattr(instance, "platform_id", None) or instance.pk, None)


QUIET_HOURS = Rule(
    name=str(DeliveryRule.QUIET_HOURS.value),
    decide=quiet_hours_decide,
    applies=quiet_hours_apply,
    order=QUIET_HOURS_ORDER,
    needs_time_zone=True,
)

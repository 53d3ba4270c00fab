"""The digest rule of a type on a platform, and the windows it makes.

A platform's `DigestRule` inherits every blank field from the type's shipped
default (`defaults.DIGESTS`). Windows are aligned to the clock, so every event
of a window computes the same window end without asking anyone: a window of N
minutes ends on the next multiple of N minutes since the epoch (60: the next
full hour); a daily window ends at the next `daily_at` in the rule's zone or,
when the rule names none, the recipient's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError

from notifications.models import Channel, Platform
from templates_app import defaults
from templates_app.models import Cadence, DigestCadence, DigestMode, DigestRule

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# A window longer than a week is not a digest any more.
MAX_WINDOW_MINUTES = 7 * 24 * 60
# A learner's daily or weekly (Monday) digest goes out at the rule's daily time, else at this local time.
CADENCE_AT = time(18, 0)


@dataclass(frozen=True)
class DigestPlan:
    """The digest a type gets on a platform, every field resolved."""

    notification_type: str
    window_minutes: int | None
    daily_at: time | None
    timezone: str  # "" = the recipient's
    mode: str
    channels: tuple[str, ...]
    key_context: str
    template: dict[str, str]
    # Cadences a learner may pick for this type (see `for_cadence`).
    learner_cadences: tuple[str, ...] = ()
    # With `daily_at`: only on this weekday (0 = Monday), a weekly window.
    weekday: int | None = None

    def for_cadence(self, cadence: str | None) -> DigestPlan | None:
        """This plan as a learner's cadence reshapes it; None for `immediate` (the learner gets every event live).

        A cadence the rule does not offer (it was withdrawn since the learner
        chose it) leaves the plan as it is.
        """
        if not cadence or cadence not in self.learner_cadences:
            return self
        if cadence == Cadence.IMMEDIATE:
            return None
        if cadence == Cadence.HOURLY:
            return replace(self, window_minutes=60, daily_at=None, weekday=None)
        at = self.daily_at or CADENCE_AT
        return replace(self, window_minutes=None, daily_at=at, weekday=0 if cadence == Cadence.WEEKLY else None)

    def digested(self, channels) -> list[str]:
        return [c for c in channels if c in self.channels]

    def zone_for(self, recipient_timezone: str) -> ZoneInfo:
        return _zone(self.timezone or recipient_timezone or "UTC")

    def window(self, *, at: datetime, recipient_timezone: str = "") -> tuple[datetime, datetime]:
        """(start, end) of the window that holds the moment `at`."""
        if self.window_minutes:
            size = timedelta(minutes=self.window_minutes)
            start = _EPOCH + ((at - _EPOCH) // size) * size
            return start, start + size
        zone = self.zone_for(recipient_timezone)
        day = at.astimezone(zone).date()
        if self.weekday is not None:
            day += timedelta(days=(self.weekday - day.weekday()) % 7)
        end = _local(day, self.daily_at, zone)
        if end <= at:
            end = _local(day + self._step(), self.daily_at, zone)
        return _local(end.astimezone(zone).date() - self._step(), self.daily_at, zone), end

    def window_after(self, end: datetime, *, recipient_timezone: str = "") -> tuple[datetime, datetime]:
        """The window that follows the one ending at `end` (for an event that found its bucket closed)."""
        if self.window_minutes:
            return end, end + timedelta(minutes=self.window_minutes)
        zone = self.zone_for(recipient_timezone)
        return end, _local(end.astimezone(zone).date() + self._step(), self.daily_at, zone)

    def _step(self) -> timedelta:
        return timedelta(days=1 if self.weekday is None else 7)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    # A local time skipped by a DST change resolves forward (fold=0), one that
    # happens twice to its first occurrence: either way one instant per day.
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def parse_time(value: str) -> time:
    match = _TIME.match(value or "")
    if not match:
        raise ValueError(f"{value!r} is not a time of day HH:MM")
    return time(int(match.group(1)), int(match.group(2)))


def digest_plan(*, platform: Platform, notification_type: str) -> DigestPlan | None:
    """The digest `notification_type` gets on `platform`, or None when it goes out live.

    A type is digested when the platform has an enabled rule for it; critical
    types never are, whatever a rule says.
    """
    if notification_type in defaults.CRITICAL_TYPES:
        return None
    rule = DigestRule.objects.filter(platform=platform, notification_type=notification_type, enabled=True).first()
    if rule is None:
        return None
    return plan_from(rule)


def plan_from(rule: DigestRule) -> DigestPlan | None:
    """Resolve a rule over its shipped default; None when neither says what the window is."""
    shipped = defaults.DIGEST_BY_TYPE.get(rule.notification_type)
    window_minutes, daily_at = rule.window_minutes, rule.daily_at
    if not window_minutes and daily_at is None and shipped is not None:
        window_minutes = shipped.window_minutes
        daily_at = parse_time(shipped.daily_at) if shipped.daily_at else None
    if not window_minutes and daily_at is None:
        return None
    channels = rule.channels if rule.channels is not None else (shipped.channels if shipped else ())
    key_context = rule.key_context if rule.key_context is not None else (shipped.key_context if shipped else "")
    base = shipped.template() if shipped is not None else defaults.GENERIC_DIGEST_TEMPLATE
    template = {f: getattr(rule, f) or base[f] for f in defaults.DIGEST_TEMPLATE_FIELDS}
    return DigestPlan(
        notification_type=rule.notification_type,
        window_minutes=window_minutes or None,
        daily_at=None if window_minutes else daily_at,
        timezone=rule.timezone,
        mode=rule.mode or (shipped.mode if shipped else DigestMode.TRAILING),
        channels=tuple(str(c) for c in channels),
        key_context=key_context or "",
        template=template,
        learner_cadences=tuple(rule.learner_cadences or ()),
    )


def cadences_of(*, platform: Platform, plan: DigestPlan, user_ids) -> dict[int, str]:
    """{user id: cadence} of the given users who chose one for the plan's type (one query, none if none offered)."""
    if not plan.learner_cadences or not user_ids:
        return {}
    return dict(
        DigestCadence.objects.filter(
            platform=platform, notification_type=plan.notification_type, user_id__in=list(user_ids)
        ).values_list("user_id", "cadence")
    )


def rule_validate(rule: DigestRule) -> None:
    """What a rule must satisfy before it is saved (the admin form calls this); raises ValidationError."""
    errors: dict[str, list[str]] = {}
    if rule.notification_type in defaults.CRITICAL_TYPES:
        errors["notification_type"] = [f"{rule.notification_type} is critical: it is never digested."]
    if rule.window_minutes is not None and not 1 <= rule.window_minutes <= MAX_WINDOW_MINUTES:
        errors["window_minutes"] = [f"Between 1 and {MAX_WINDOW_MINUTES} minutes."]
    if rule.window_minutes and rule.daily_at is not None:
        errors["daily_at"] = ["Give a window in minutes or a daily time, not both."]
    if rule.timezone:
        try:
            ZoneInfo(rule.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = [f"Unknown time zone {rule.timezone!r}."]
    cadences = rule.learner_cadences or []
    if not isinstance(cadences, list) or any(c not in Cadence.values for c in cadences):
        errors["learner_cadences"] = [f"A list of cadences among {', '.join(Cadence.values)}."]
    if rule.channels is not None:
        if not isinstance(rule.channels, list) or any(c not in Channel.values for c in rule.channels):
            errors["channels"] = [f"A list of channels among {', '.join(Channel.values)}."]
    shipped = defaults.DIGEST_BY_TYPE.get(rule.notification_type)
    if shipped is None and not errors:
        if not rule.window_minutes and rule.daily_at is None:
            errors["window_minutes"] = ["This type has no shipped digest: give a window or a daily time."]
        if not rule.channels:
            errors["channels"] = ["This type has no shipped digest: name the channels to collect."]
    if errors:
        raise ValidationError(errors)

"""When a periodic config runs next (PROACTIVE_LEARNER_NOTIFICATION's `periodic_config`)."""

from __future__ import annotations

import calendar
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

FREQUENCY_DAYS = {"DAILY": 1, "WEEKLY": 7}


def _add_month(day: date) -> date:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _step(day: date, config: dict) -> date:
    frequency = config.get("frequency") or "WEEKLY"
    if frequency == "MONTHLY":
        return _add_month(day)
    if frequency == "CUSTOM":
        return day + timedelta(days=int(config.get("custom_interval_days") or 1))
    return day + timedelta(days=FREQUENCY_DAYS.get(frequency, 7))


def _at(day: date, config: dict, tz: zoneinfo.ZoneInfo) -> datetime:
    hour, minute = (int(part) for part in (config.get("execution_time") or "09:00").split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def next_execution(config: dict, *, now: datetime, previous: datetime | None = None) -> datetime:
    """The next run, in UTC.

    Without `previous` (a new or changed config) it is the first `execution_time`
    in the config's timezone after `now`. After a run scheduled at `previous`
    it is one period later; runs missed while the service was down are
    skipped rather than sent in a burst.
    """
    tz = zoneinfo.ZoneInfo(config.get("timezone") or "UTC")
    local_now = now.astimezone(tz)
    if previous is None:
        candidate = _at(local_now.date(), config, tz)
        if candidate <= local_now:
            candidate = _at(local_now.date() + timedelta(days=1), config, tz)
        return candidate.astimezone(UTC)
    day = _step(previous.astimezone(tz).date(), config)
    candidate = _at(day, config, tz)
    while candidate <= local_now:
        day = _step(day, config)
        candidate = _at(day, config, tz)
    return candidate.astimezone(UTC)

"""Time zones and quiet-hours windows: the wall-clock arithmetic delivery rules share.

A window is two wall-clock times in a zone; it may cross midnight (22:00 to
07:00) and is read anew each day, so daylight-saving changes move it with the
clock on the wall, as the person sleeping through it expects.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def is_time_zone(name: object) -> bool:
    return isinstance(name, str) and name in _known()


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The zone of that name; an unknown or empty name is UTC (a stale account value must not break a send)."""
    try:
        return ZoneInfo(name) if is_time_zone(name) else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def inside(start: time, end: time, wall: time) -> bool:
    """Is the wall-clock time inside [start, end)? start == end is an empty window."""
    if start < end:
        return start <= wall < end
    if start > end:  # crosses midnight
        return wall >= start or wall < end
    return False


def window_end(*, start: time, end: time, zone_name: str, now: datetime) -> datetime | None:
    """When the window `now` is in ends (aware, UTC), or None when `now` is outside it.

    The end is the next `end` on the wall clock after `now`. An end that falls
    in a spring-forward gap (02:30 on a day that jumps from 02:00 to 03:00) is
    read with the offset before the jump, i.e. just after the clocks moved; an
    end that occurs twice (autumn) is its first occurrence.
    """
    tz = zone(zone_name)
    local = now.astimezone(tz)
    wall = local.time().replace(tzinfo=None)
    if not inside(start, end, wall):
        return None
    day = local.date()
    if wall >= end:  # past midnight still to come: the window ends tomorrow
        day += timedelta(days=1)
    ends = datetime.combine(day, end, tzinfo=tz).astimezone(UTC)
    # Within a DST jump the wall-clock end can read as at or before now; the
    # window is then over as soon as the clock moves on.
    return ends if ends > now else now + timedelta(seconds=1)

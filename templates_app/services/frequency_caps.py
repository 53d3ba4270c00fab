"""Frequency caps: at most N non-critical deliveries per recipient, channel and window, per platform.

A platform sets a cap per channel (`FrequencyCap`: limit, window of an hour,
a day or a week on the platform's clock, and what happens past the limit).
The rule runs in the pipeline's front door like quiet hours (see
`notifications.pipeline.rules`), so every send path is capped the same way:

- Each chunk asks the counter table (`FrequencyCapCount`, one row per
  platform, channel, recipient and window) for slots with one
  `INSERT … ON CONFLICT DO UPDATE … RETURNING` per channel and window. The
  upsert adds what the chunk asks for and returns the new count, so two sends
  racing for the same recipient queue on that row and the second sees the
  first's slots: between them they never get more than the limit.
- Rows past the limit are written `suppressed` (`over_limit=suppress`) or
  `pending` until the start of the next window (`defer`), and counted in
  that window, so the next window's cap holds too; when it is full as well,
  the one after, up to `MAX_WINDOWS_AHEAD` windows; rows with no room even
  there are suppressed. Either way the row shows `rule=frequency_cap` and
  `notify_delivery_rules_total{rule="frequency_cap"}` counts it.
- A row goes out when quiet hours let it, so the cap counts it in the window
  of that time: the cap runs before quiet hours (`ORDER`) and asks them when
  each row would go (a deferred row landing in the recipient's night waits for
  the morning, still counted in the window it was given).
- Critical types and critical messages pass, uncounted.

Platforms without caps pay one cached dictionary lookup per chunk
(`_platform_caps`, read at most every `_CACHE_SECONDS` per process and
dropped on saves). Counts are asked for at write time: a re-run of a send
whose rows exist already (a resumed scheduled job) asks again for rows it
does not insert, which can only hold later deliveries back, never let one
more through.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import partial

import psycopg
from django.db import connection, transaction

from notifications import metrics
from notifications.models import DeliveryRule
from notifications.pipeline.rules import DEFER, Decision, Rule
from notifications.zones import zone
from templates_app.models import CapAction, CapWindow, FrequencyCap, FrequencyCapCount
from templates_app.services.delivery_rules import QUIET_HOURS, QUIET_HOURS_ORDER

# Before quiet hours: the cap must see every row to count it, and asks quiet
# hours itself when each row would go.
ORDER = QUIET_HOURS_ORDER - 10
# A deferred row looks this many windows ahead for room; past them it is suppressed.
MAX_WINDOWS_AHEAD = 30
RULE = str(DeliveryRule.FREQUENCY_CAP.value)


# -- windows -------------------------------------------------------------------------------------


def cap_window(*, window: str, zone_name: str, at: datetime) -> tuple[datetime, datetime]:
    """The window (start, end), aware UTC, that `at` falls in, on the platform's wall clock.

    An hour starts on the hour of the zone's clock (half-hour zones included);
    a day at local midnight, a week at Monday's. A midnight the clocks skip
    (a DST jump at 00:00) starts the day when the clocks jump.
    """
    tz = zone(zone_name)
    local = at.astimezone(tz)
    if window == CapWindow.HOUR:
        start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return start, start + timedelta(hours=1)
    day = local.date()
    days = 1
    if window == CapWindow.WEEK:
        day -= timedelta(days=day.weekday())
        days = 7
    start = datetime.combine(day, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=days), datetime.min.time(), tzinfo=tz).astimezone(UTC)
    return start, end


# -- configuration -------------------------------------------------------------------------------


def frequency_caps_of(*, platform) -> list[FrequencyCap]:
    return list(FrequencyCap.objects.filter(platform=platform).order_by("channel"))


def frequency_cap_save(*, platform, channel: str, limit: int, window: str, over_limit: str) -> FrequencyCap:
    """Set the platform's cap on `channel` (create or replace); counts so far stay and meet the new limit."""
    cap, _ = FrequencyCap.objects.update_or_create(
        platform=platform, channel=channel, defaults={"limit": limit, "window": window, "over_limit": over_limit}
    )
    return cap


def frequency_cap_delete(*, platform, channel: str) -> bool:
    """Remove the cap; rows it deferred still go at their time (they were promised that slot)."""
    deleted, _ = FrequencyCap.objects.filter(platform=platform, channel=channel).delete()
    return bool(deleted)


# -- the platform's caps, cached -----------------------------------------------------------------

_CACHE_SECONDS = 5.0
# platform pk -> (expires, (zone name, {channel: FrequencyCap values}) or None)
_platforms: dict[int, tuple[float, tuple[str, dict[str, tuple[int, str, str]]] | None]] = {}


def _platform_caps(platform: int) -> tuple[str, dict[str, tuple[int, str, str]]] | None:
    """(platform time zone, {channel: (limit, window, over_limit)}), or None for a platform without caps."""
    cached = _platforms.get(platform)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    rows = list(
        FrequencyCap.objects.filter(platform_id=platform).values_list(
            "channel", "limit", "window", "over_limit", "platform__time_zone"
        )
    )
    value = None
    if rows:
        value = (rows[0][4], {channel: (limit, window, action) for channel, limit, window, action, _ in rows})
    _platforms[platform] = (time.monotonic() + _CACHE_SECONDS, value)
    return value


def frequency_caps_forget(sender=None, instance=None, **kwargs) -> None:
    """A cap or a platform (its time zone) changed: the next send reads them again."""
    if instance is None:
        _platforms.clear()
    else:
        _platforms.pop(getattr(instance, "platform_id", None) or instance.pk, None)


# -- the counter ---------------------------------------------------------------------------------

_UPSERT_POSTGRESQL = """
INSERT INTO {table} AS c (platform_id, channel, recipient_key, window_start, count)
SELECT %s, %s, u.k, %s, u.n FROM unnest(%b::text[], %b::integer[]) AS u(k, n) ORDER BY u.k
ON CONFLICT (platform_id, channel, recipient_key, window_start) DO UPDATE SET count = c.count + EXCLUDED.count
RETURNING c.recipient_key, c.count
"""
_UPSERT_SQLITE = """
INSERT INTO {table} AS c (platform_id, channel, recipient_key, window_start, count) VALUES {values}
ON CONFLICT (platform_id, channel, recipient_key, window_start) DO UPDATE SET count = c.count + excluded.count
RETURNING recipient_key, count
"""
_SQLITE_ROWS = 1000  # 5 parameters a row, well under SQLite's limit


def counts_take(*, platform: int, channel: str, window_start: datetime, asked: dict[str, int], limit: int) -> dict:
    """Add `asked` (recipient key -> deliveries) to the window's counters; return the slots each got.

    One statement per call: each recipient's counter row is locked by the
    upsert in key order, so concurrent takers queue and each sees the
    count the others left (no deadlock between two chunks, whatever their keys).
    """
    table = FrequencyCapCount._meta.db_table
    keys = sorted(asked)
    after: dict[str, int] = {}
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        # Server-side binding on Django's own connection (same transaction), arrays in binary:
        # Django's client-side binding would quote every key into the SQL text (as in pipeline.sql).
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(
                _UPSERT_POSTGRESQL.format(table=table),
                [platform, channel, window_start, keys, [asked[k] for k in keys]],
            )
            after.update(cursor.fetchall())
    else:
        with connection.cursor() as cursor:
            # Development path: SQLite runs one writer at a time.
            start = connection.ops.adapt_datetimefield_value(window_start)
            for i in range(0, len(keys), _SQLITE_ROWS):
                part = keys[i : i + _SQLITE_ROWS]
                values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(part))
                params = [p for k in part for p in (platform, channel, k, start, asked[k])]
                cursor.execute(_UPSERT_SQLITE.format(table=table, values=values), params)
                after.update(cursor.fetchall())
    # Before this call the count was after - asked; the slots left then are ours.
    return {k: max(0, min(n, limit - (after[k] - n))) for k, n in asked.items()}


_PRUNE_EVERY = 3600.0
_pruned = [0.0]


def counts_prune(*, now: datetime) -> int:
    """Delete counters of windows over for good (the longest window is a week); at most hourly per process."""
    if _pruned[0] > time.monotonic():
        return 0
    _pruned[0] = time.monotonic() + _PRUNE_EVERY
    deleted, _ = FrequencyCapCount.objects.filter(window_start__lt=now - timedelta(days=8)).delete()
    return deleted


# -- the rule ------------------------------------------------------------------------------------


def frequency_caps_apply(*, platform, channels) -> bool:
    # Any channel: a fallback row may land on a capped channel the send did not name.
    return _platform_caps(platform) is not None


def _quiet_until(*, platform, rows: list, at: datetime) -> dict[int, datetime]:
    """When quiet hours would let each of `rows` go, if not at `at`."""
    made = QUIET_HOURS.decide(platform=platform, rows=rows, now=at)
    return {i: d.until for i, d in made.items() if d.action == DEFER}


def frequency_caps_decide(*, platform, rows: list, now: datetime) -> dict:
    """The frequency-cap rule: rows past the recipient's cap wait for a later window or are suppressed."""
    settings_ = _platform_caps(platform)
    if settings_ is None:
        return {}
    zone_name, caps = settings_
    rows = [r for r in rows if not r.critical and r.channel in caps]
    if not rows:
        return {}
    counts_prune(now=now)
    quiet = _quiet_until(platform=platform, rows=rows, at=now)
    decisions: dict[int, Decision] = {}
    by_channel: dict[str, list] = defaultdict(list)
    for row in rows:
        by_channel[row.channel].append(row)
    for channel, mine in by_channel.items():
        limit, window, action = caps[channel]
        decisions.update(
            _allocate(
                platform=platform,
                channel=channel,
                limit=limit,
                window=window,
                suppress=action == CapAction.SUPPRESS,
                zone_name=zone_name,
                rows=[(row, quiet.get(row.index, now)) for row in mine],
                now=now,
            )
        )
    if decisions:
        held = Counter(row.channel for row in rows if row.index in decisions)
        transaction.on_commit(partial(metrics.delivery_rule_applied, rule=RULE, counts=held))
    return decisions


def _allocate(*, platform, channel, limit, window, suppress, zone_name, rows, now) -> dict:
    """Give each row (row, when it would go) a slot in its window, else in a later one, else suppress it."""
    decisions: dict[int, Decision] = {}
    for ahead in range(MAX_WINDOWS_AHEAD + 1):
        if not rows:
            break
        # Rows by window, then by recipient, in row order (the earlier rows of a send get the slots).
        windows: dict[tuple[datetime, datetime], dict[str, list]] = defaultdict(lambda: defaultdict(list))
        window_of: dict[datetime, tuple[datetime, datetime]] = {}  # most rows share one time: work it out once
        for row, when in rows:
            bounds = window_of.get(when)
            if bounds is None:
                bounds = window_of[when] = cap_window(window=window, zone_name=zone_name, at=when)
            windows[bounds][row.recipient_key].append((row, when))
        over: dict[datetime, list] = defaultdict(list)  # next window's start -> rows that did not fit
        for (start, end), recipients in sorted(windows.items()):
            asked = {key: len(items) for key, items in recipients.items()}
            got = counts_take(platform=platform, channel=channel, window_start=start, asked=asked, limit=limit)
            for key, items in recipients.items():
                for row, when in items[: got[key]]:
                    if ahead:
                        decisions[row.index] = Decision.defer(RULE, when)
                    # In its own window: goes now, or when quiet hours end (that rule defers it).
                for row, _ in items[got[key] :]:
                    over[end].append(row)
        if not over:
            return decisions
        if suppress:
            for late in over.values():
                for row in late:
                    decisions[row.index] = Decision.suppress(RULE)
            return decisions
        rows = []
        for start, late in over.items():
            quiet = _quiet_until(platform=platform, rows=late, at=start)
            rows += [(row, quiet.get(row.index, start)) for row in late]
    for row, _ in rows:  # no room in MAX_WINDOWS_AHEAD windows: held back, counted, visible
        decisions[row.index] = Decision.suppress(RULE)
    return decisions


FREQUENCY_CAP = Rule(name=RULE, decide=frequency_caps_decide, applies=frequency_caps_apply, order=ORDER)

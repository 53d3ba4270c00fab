"""Delivery rules: per row about to be written, go now, wait until a time, or be held back.

The front door asks the rules while it builds each chunk of rows (see
`build.build_rows`), after eligibility and before the INSERT, so every send
path (bulk, scheduled job, builder, event, alert) is ruled the same way and a
rule costs a few queries per chunk of rows, never one per row. A rule answers
for the rows it acts on, by their index:

- `Decision.defer(rule, until)`: the row is written `pending` with
  `next_attempt_at=until`; dispatch leaves it alone until then and the
  scheduler's `deliveries` sweep sends it once it is due (see `dispatch._free`).
- `Decision.suppress(rule)`: the row is written `suppressed`, never sent, and
  counted as such.
- `Decision.silence(rule)`: the row goes at once, but quietly: an in-app row
  is announced without sound or priority (`realtime_payload`).

Every decision writes its rule on the row (`Notification.rule`), so deliveries
and counts show why a row waits or was held back. A row with no decision is
written exactly as without rules.

Apps register rules in their `AppConfig.ready()` (`register_rule`), like
eligibility's filters; the core cannot import the apps that hold preferences
or suppression lists. Rules run in `order`; a row an earlier rule deferred or
suppressed is not shown to later ones (a silenced row is). Rows that failed on
write (no address) are never shown to a rule.

Critical deliveries: a rule should let them through. `Row.critical` is true
for a message marked critical by its sender (`Message.critical`, e.g. a
`critical` alert) or whose type an app declares critical through
`register_critical_types` (templates_app: the shipped types flagged
`critical`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import repeat
from typing import NamedTuple

DEFER, SUPPRESS, SILENCE = "defer", "suppress", "silence"


class Row(NamedTuple):
    """What a rule sees of one row about to be written (a tuple: 100k of them are built per send)."""

    index: int
    user_id: int | None
    recipient_key: str
    channel: str
    notification_type: str
    critical: bool
    # The recipient's `User.timezone` for a rule that asked for it (`Rule.needs_time_zone`),
    # read with the chunk's users; "" otherwise and for bare addresses.
    time_zone: str = ""


# Row(*values) without Row.__new__'s Python frame: tuple.__new__(Row, values).
_new_row = partial(tuple.__new__, Row)


@dataclass(frozen=True)
class Decision:
    action: str  # DEFER, SUPPRESS or SILENCE
    rule: str  # a DeliveryRule value, written on the row
    until: datetime | None = None  # DEFER only: when the row may go

    @classmethod
    def defer(cls, rule: str, until: datetime) -> Decision:
        return cls(DEFER, str(rule), until)

    @classmethod
    def suppress(cls, rule: str) -> Decision:
        return cls(SUPPRESS, str(rule))

    @classmethod
    def silence(cls, rule: str) -> Decision:
        return cls(SILENCE, str(rule))


# applies(platform=<Platform pk>, channels=(names, ...)) -> bool: a cheap check per chunk;
# False skips the rule without building its rows.
Applies = Callable[..., bool]
# decide(platform=<Platform pk>, rows=[Row, ...], now=<aware datetime>) -> {Row.index: Decision}
Decide = Callable[..., dict]
# critical_types(platform=<Platform pk>, types={type, ...}) -> the critical ones among them
CriticalTypes = Callable[..., Collection[str]]


@dataclass(frozen=True)
class Rule:
    name: str
    decide: Decide
    applies: Applies | None = None
    order: int = 100
    # The rule reads `Row.time_zone`: the write reads the zones with the chunk's users, no query of its own.
    needs_time_zone: bool = False


_RULES: list[Rule] = []
_CRITICAL: list[CriticalTypes] = []


def register_rule(rule: Rule) -> Rule:
    """Add a rule (idempotent by name: a second registration under the same name replaces the first)."""
    _RULES[:] = sorted([r for r in _RULES if r.name != rule.name] + [rule], key=lambda r: r.order)
    return rule


def unregister_rule(name: str) -> None:
    _RULES[:] = [r for r in _RULES if r.name != name]


def register_critical_types(fn: CriticalTypes) -> CriticalTypes:
    if fn not in _CRITICAL:
        _CRITICAL.append(fn)
    return fn


def has_rules() -> bool:
    return bool(_RULES)


def critical_types(*, platform, types: Collection[str]) -> set[str]:
    found: set[str] = set()
    for fn in list(_CRITICAL):
        found |= set(fn(platform=platform, types=set(types)))
    return found


def applicable(*, platform, channels: Sequence[str]) -> list[Rule]:
    """The rules that apply to a chunk of this platform on these channels (their cheap `applies` checks)."""
    return [r for r in list(_RULES) if r.applies is None or r.applies(platform=platform, channels=tuple(channels))]


def decide(
    *,
    platform,
    now: datetime,
    channels: Sequence[str],
    user_ids: Sequence[int | None],
    keys: Sequence[str],
    row_channels: Sequence[str],
    types: Sequence[str],
    critical: Sequence[bool],
    skip: Collection[int] = (),
    rules: Sequence[Rule] | None = None,
    time_zones: Mapping[int, str] | None = None,
) -> dict[int, Decision]:
    """The decisions of every applicable rule for the given row columns, by row index.

    `types` and `critical` may be one value for all rows (a bulk message) or
    a list per row; rows whose index is in `skip` (failed on write) are not shown.
    `rules`: the `applicable` ones if the caller has them already; `time_zones`:
    {user id: zone} for rules that need them.
    """
    if rules is None:
        rules = applicable(platform=platform, channels=channels)
    if not rules:
        return {}
    count = len(keys)
    if isinstance(types, str):
        distinct = {types}
    else:
        distinct = set(types)
    critical_of_type = critical_types(platform=platform, types=distinct)
    # Columns zipped into rows in C (`_new_row`): 100k rows per send, built only when a rule applies.
    if isinstance(types, str):
        types_column = repeat(types, count)
        if types in critical_of_type:
            critical_column = repeat(True, count)
        elif isinstance(critical, bool):
            critical_column = repeat(critical, count)
        else:
            critical_column = iter(critical)
    else:
        flags = repeat(critical, count) if isinstance(critical, bool) else critical
        critical_column = iter([flag or t in critical_of_type for flag, t in zip(flags, types, strict=True)])
        types_column = iter(types)
    zones = time_zones or {}
    zones_column = map(zones.get, user_ids, repeat("", count)) if zones else repeat("", count)
    rows = list(
        map(
            _new_row,
            zip(range(count), user_ids, keys, row_channels, types_column, critical_column, zones_column, strict=True),
        )
    )
    if skip:
        rows = [r for r in rows if r.index not in skip]
    decisions: dict[int, Decision] = {}
    for rule in rules:
        if not rows:
            break
        made = rule.decide(platform=platform, rows=rows, now=now)
        if not made:
            continue
        for index, decision in made.items():
            decisions[index] = decision
        rows = [r for r in rows if r.index not in made or made[r.index].action == SILENCE]
    return decisions

"""Who may get which channel: the front door decides here, before any row is built.

Callers pass the channels they want and every recipient, users and bare
addresses mixed; this module narrows that down, so no caller filters channels
of its own:

- A recipient known only by an address gets the channels that address serves:
  an email address the email channel, a phone number SMS (never push or
  in-app, which need an account).
- Channel filters, registered in an `AppConfig.ready()`, narrow a platform's
  channels for a whole send. The core registers the platform's push switch
  (`Platform.push_enabled`).
- Recipient filters, registered the same way, drop rows of users who opted
  out; the core cannot import the app that stores preferences
  (`templates_app`), so that app registers its filter here. A recipient who
  opted out of a type on a channel gets no row, whichever path sent it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from notifications.channels import Channel
from notifications.models import Platform

# filter(platform=<Platform>, channels=(names, ...)) -> the channels it allows on that platform
ChannelFilter = Callable[..., Sequence[str]]
# filter(platform=<Platform or its pk>, rows=Candidates) -> the indexes of the rows to leave out
RecipientFilter = Callable[..., set[int]]

_CHANNEL_FILTERS: list[ChannelFilter] = []
_RECIPIENT_FILTERS: list[RecipientFilter] = []


@dataclass(frozen=True)
class Candidates:
    """What a recipient filter sees of the rows about to be written: a column per field, row i at index i.

    Columns rather than an object per row: a 100k fan-out made 100k of them
    only for the filter to find that nobody had opted out, a third of the
    building thread's time.
    """

    user_ids: Sequence[int | None]  # None: a bare address, which no recipient filter drops
    channels: Sequence[str]
    types: Sequence[str]


def register_channel_filter(fn: ChannelFilter) -> ChannelFilter:
    if fn not in _CHANNEL_FILTERS:
        _CHANNEL_FILTERS.append(fn)
    return fn


def register_recipient_filter(fn: RecipientFilter) -> RecipientFilter:
    if fn not in _RECIPIENT_FILTERS:
        _RECIPIENT_FILTERS.append(fn)
    return fn


def platform_channels(*, platform: Platform, channels: Sequence[str]) -> tuple[str, ...]:
    """The requested channels this platform allows, in the caller's order, without repeats."""
    allowed = tuple(dict.fromkeys(str(c) for c in channels))
    for fn in list(_CHANNEL_FILTERS):
        allowed = tuple(c for c in allowed if c in set(fn(platform=platform, channels=allowed)))
    return allowed


# Characters of a phone number as people write it; an address made only of them is never emailed.
_PHONE_CHARACTERS = frozenset("+0123456789 ()-.")
EMAIL, PHONE, UNKNOWN = "email", "phone", "unknown"


def address_kind(address: str) -> str:
    if "@" in address:
        return EMAIL
    if address and set(address) <= _PHONE_CHARACTERS:
        return PHONE
    return UNKNOWN


def address_channels(channels: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """{address kind: the channels such an address serves} among `channels`.

    An address that is neither (a typo) goes to every address channel asked
    for, where the backend refuses it with a reason the caller sees, rather
    than silently getting no row.
    """
    email = tuple(c for c in channels if c == Channel.EMAIL)
    sms = tuple(c for c in channels if c == Channel.SMS)
    return {EMAIL: email, PHONE: sms, UNKNOWN: email + sms}


def has_recipient_filters() -> bool:
    return bool(_RECIPIENT_FILTERS)


def recipients_dropped(*, platform, rows: Candidates) -> set[int]:
    """The indexes of the rows some recipient filter leaves out (usually none)."""
    dropped: set[int] = set()
    for fn in list(_RECIPIENT_FILTERS):
        dropped |= fn(platform=platform, rows=rows)
    return dropped


def push_switch(*, platform: Platform, channels: Sequence[str]) -> Sequence[str]:
    """The core's own channel filter: a platform with push turned off sends no push."""
    if platform.push_enabled:
        return channels
    return [c for c in channels if c != Channel.PUSH]

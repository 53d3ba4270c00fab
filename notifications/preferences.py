"""Recipient filters: the hook through which user preferences reach every send path.

The core cannot import the app that stores preferences (`templates_app`), so
that app registers a filter here in its `AppConfig.ready()`. `deliveries_write`
passes every batch of rows it is about to write through the registered
filters; a filter returns the rows to keep. A recipient who opted out of a
type on a channel therefore gets no row at all, whichever path sent it.
"""

from __future__ import annotations

from collections.abc import Callable

# filter(platform=<Platform or its pk>, rows=[objects with user_id, channel, notification_type])
#   -> the rows to keep
RecipientFilter = Callable[..., list]

_FILTERS: list[RecipientFilter] = []


def register_recipient_filter(fn: RecipientFilter) -> RecipientFilter:
    if fn not in _FILTERS:
        _FILTERS.append(fn)
    return fn


def has_filters() -> bool:
    return bool(_FILTERS)


def filter_deliveries(*, platform, rows: list) -> list:
    for fn in list(_FILTERS):
        rows = fn(platform=platform, rows=rows)
    return rows

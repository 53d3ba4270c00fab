"""templates_app's part in the pipeline's delivery rules (see `notifications.pipeline.rules`).

Which notification types are critical lives with the types: the shipped
defaults flag them (`defaults.TypeDefault.critical`: security and account
messages, ...). A critical type cannot be switched off by a user and goes
through every delivery rule that holds messages back (quiet hours, frequency
caps).
"""

from __future__ import annotations

from collections.abc import Collection

from templates_app import defaults


def critical_types_of(*, platform, types: Collection[str]) -> set[str]:
    """The critical types among `types` (registered with `rules.register_critical_types`)."""
    return set(types) & defaults.CRITICAL_TYPES

"""The typed parts every caller of the pipeline speaks in.

A caller resolves its audience into `Recipient`s, chooses its content (one
`Message`, or a `Renderer` that gives the message per recipient and channel)
and hands them to the front door (`notification_send`, or a `Send` each to
`notification_send_many`), which answers with a `SendResult` per source.
`Outcome` is what dispatch records for one delivery once its backend answered.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from notifications.models import Platform
from notifications.sanitize import sanitize_html


@dataclass(frozen=True)
class Recipient:
    """A user account, or a bare address (email or phone) of someone without one."""

    user_id: int | None = None
    address: str = ""
    context: dict = field(default_factory=dict)

    def key(self) -> str:
        if self.user_id is not None:
            return f"user:{self.user_id}"
        kind = "email" if "@" in self.address else "phone"
        return f"{kind}:{self.address.lower() if kind == 'email' else self.address}"


@dataclass(frozen=True)
class Message:
    title: str = ""
    body: str = ""  # plain text
    html: str = ""  # HTML, always passed through the one sanitiser (see __post_init__)
    short_message: str = ""
    notification_type: str = "system_alert"
    level: str = "info"
    context: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    image_url: str = ""
    # Goes through every delivery rule that holds messages back (quiet hours,
    # frequency caps): a `critical` alert. Types can be critical too (see `rules`).
    critical: bool = False

    def __post_init__(self):
        # Every message the pipeline writes or sends is built here, so this is
        # the one door HTML passes on its way to a person (email part, inbox
        # body); already sanitised HTML is not cleaned twice.
        if self.html:
            object.__setattr__(self, "html", sanitize_html(self.html))


# A renderer gives the message for one recipient on one channel; `user` is the
# recipient's account or None for a bare address. The account comes with
# `build.RENDERED_USER_FIELDS` loaded (id, username, email, phone number, time
# zone); any other field is read from the database when first used.
Renderer = Callable[[Recipient, str, object], Message]

StopCheck = Callable[[], bool]
# For many sends at once: given the sources still at work, which of them may go on.
RunningCheck = Callable[[list[str]], Collection[str]]


@dataclass
class SendResult:
    total_recipients: int = 0
    sent: int = 0
    failed: int = 0
    # Waiting for a worker or a retry; `sent`/`failed` grow as they finish.
    pending: int = 0
    # Push counts device tokens, not users.
    units_sent: int = 0
    units_failed: int = 0
    # Failed deliveries that reached no unit at all (push: users without an
    # active device; rows cancelled before they went out).
    unreached: int = 0
    # Held back by a delivery rule (the rows' `rule` says which); never sent.
    # Rows a rule deferred are `pending` until their time.
    suppressed: int = 0
    per_channel: dict = field(default_factory=dict)
    # What to poll `send_counts(source=...)` with for progress.
    source: str = ""


@dataclass(frozen=True)
class Send:
    """One send of `notification_send_many`: what goes out under one source."""

    platform: Platform
    source: str
    channels: Sequence[str]
    recipients: Sequence[Recipient]
    message: Message | None = None
    render: Renderer | None = None
    # Where a delivery that cannot get through goes instead (a channel name; "" : the type's policy).
    fallback_channel: str = ""


class Outcome(NamedTuple):
    """What one backend answer does to its delivery row (see `sql.record`)."""

    id: object
    delivery_status: str
    error: str
    attempts: int
    provider_message_id: str
    units_sent: int
    units_failed: int
    sent_at: datetime | None
    next_attempt_at: datetime | None
    # The provider that answered ("" keeps the row's), and the rule that acted ("" keeps the row's).
    provider: str = ""
    rule: str = ""

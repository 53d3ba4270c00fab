"""The door from the core's own send paths to digests, which the templates app keeps.

A bulk email or in-app send that names a `digest_key` hands its recipients
here instead of straight to the pipeline. The templates app registers the
`Digester` that knows the platform's digest rules and joins each recipient's
digest (in its `AppConfig.ready()`), so the core never imports it; without
one, no send can be digested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from notifications.models import Platform
from notifications.pipeline.parts import Recipient


@dataclass(frozen=True)
class DigestRequest:
    platform: Platform
    notification_type: str
    channel: str
    # The caller's key: its sends to one recipient share a digest per window.
    digest_key: str
    # The send's own source: what makes a retried send join once.
    source: str
    recipients: Sequence[Recipient]
    # What the digest lists for this send (its title and message).
    item: dict


@dataclass(frozen=True)
class DigestOutcome:
    mode: str
    # Recipients the send goes to now (the first of a leading window, or a learner's `immediate` cadence).
    at_once: list[Recipient]
    joined: int
    goes_out_at: datetime | None


@dataclass(frozen=True)
class Digester:
    # applies(platform=, notification_type=, channel=) -> whether the platform digests this type on this channel
    applies: Callable[..., bool]
    # join(request) -> where the recipients went
    join: Callable[[DigestRequest], DigestOutcome]


_DIGESTER: Digester | None = None


def register(digester: Digester) -> None:
    global _DIGESTER
    _DIGESTER = digester


def digests_apply(*, platform: Platform, notification_type: str, channel: str) -> bool:
    return _DIGESTER is not None and _DIGESTER.applies(
        platform=platform, notification_type=notification_type, channel=channel
    )


def digest_join_send(request: DigestRequest) -> DigestOutcome:
    if _DIGESTER is None:
        raise RuntimeError("no digester is registered")
    return _DIGESTER.join(request)

"""What the HTTP provider backends (SMS, push) share: reading a provider's answer."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Worth trying again later: rate limits, timeouts and the provider's own trouble.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Of those, the answers that say the provider refused the request before doing
# anything with it: rate limited, or not serving at all. A 500, 502 or 504 may
# come after the provider queued the message (its application crashed while
# answering, a proxy gave up waiting) and a 408 after it read it: unknown.
REFUSED_STATUS = frozenset({429, 503})


def refused_before_sending(exc: BaseException) -> bool:
    """Whether a requests exception means the request never reached the provider.

    Only a failure to connect (refused, no route, name not resolved) qualifies:
    a read timeout or a dropped connection may come after the provider acted.
    `requests.ConnectTimeout` is a ConnectionError too: nothing was sent.
    """
    import requests

    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.Timeout):
        return False
    return isinstance(exc, requests.ConnectionError) and _connect_failure(exc)


def _connect_failure(exc: BaseException) -> bool:
    # requests wraps urllib3's NewConnectionError (refused, unreachable,
    # unresolvable) in ConnectionError; a reset or a remote hang-up mid-request
    # (ProtocolError) comes wrapped the same way but may follow the send.
    from urllib3.exceptions import NewConnectionError

    seen = set()
    current = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NewConnectionError):  # refused, unreachable, unresolvable
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            current = reason
            continue
        current = (current.args[0] if current.args and isinstance(current.args[0], BaseException) else None) or (
            current.__cause__ or current.__context__
        )
    return False


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def excerpt(text: str, limit: int = 300) -> str:
    """A provider's body, short enough for an error column and a log line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""A circuit breaker per provider of a channel, its state in Redis so every worker shares it.

- closed: deliveries go to the provider. Each call that ends in a retryable
  failure (a 503, a timeout, connection refused) adds to a run of failures;
  any other answer (a success, a refusal of one number) ends the run.
- open: after `NOTIFY_CIRCUIT_FAILURES` failures in a row. For
  `NOTIFY_CIRCUIT_COOLDOWN_SECONDS`, new deliveries go to the channel's next
  provider whose circuit admits them.
- half-open: the cool-down is over. One delivery at a time is let through as
  a probe (whoever sets the probe key first); its success closes the circuit,
  its failure opens it for another cool-down.

Only where a delivery goes is decided here. Which deliveries may move to
another provider at all is `pipeline/failover.py`'s business: a delivery whose
attempt may have reached a provider (a timeout) stays with it.

One Redis hash per provider (`circuit:<channel>:<name>` under the cache's key
prefix): failures, open_until (epoch seconds, 0 when closed), opened_at,
opens (how often it opened), last_error, last_failure_at. Transitions run in
Lua, so of many workers failing at once exactly one opens the circuit. When
Redis cannot be reached every circuit counts as closed: the breaker never
stops a send by itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings

from notifications import metrics, redis_cache

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

# KEYS: the circuit hash, its probe key. ARGV: now, threshold, cool-down, error.
# Returns 1 when this failure opened the circuit.
_FAILURE = """
local now = tonumber(ARGV[1])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last_error', ARGV[4], 'last_failure_at', ARGV[1])
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until > 0 and now < open_until then
  return 0
end
if open_until > 0 or failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[3]), 'opened_at', ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'opens', 1)
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""
# Any answer that is not a retryable failure: the run ends, the circuit closes.
_SUCCESS = """
redis.call('HSET', KEYS[1], 'failures', 0, 'open_until', 0)
redis.call('DEL', KEYS[2])
return 1
"""


@dataclass(frozen=True)
class Circuit:
    channel: str
    provider: str
    failures: int = 0
    open_until: float = 0.0
    opened_at: float = 0.0
    opens: int = 0
    last_error: str = ""
    last_failure_at: float = 0.0

    def state(self, now: float | None = None) -> str:
        if not self.open_until:
            return CLOSED
        return OPEN if (time.time() if now is None else now) < self.open_until else HALF_OPEN


def threshold() -> int:
    return max(int(getattr(settings, "NOTIFY_CIRCUIT_FAILURES", 5)), 1)


def cooldown() -> float:
    return max(float(getattr(settings, "NOTIFY_CIRCUIT_COOLDOWN_SECONDS", 60)), 1.0)


def _keys(channel: str, provider: str) -> tuple[str, str]:
    base = redis_cache.key(f"circuit:{channel}:{provider}")
    return base, base + ":probe"


def _warn(exc: Exception) -> None:
    logger.warning("circuit breaker state unavailable in Redis (%s); treating circuits as closed", exc)


def circuits_read(*, channel: str, providers: list[str]) -> dict[str, Circuit]:
    """The circuits of these providers of `channel`, in one round trip."""
    try:
        pipe = redis_cache.client().pipeline(transaction=False)
        for name in providers:
            pipe.hgetall(_keys(channel, name)[0])
        raw = pipe.execute()
    except Exception as exc:  # noqa: BLE001 - the breaker must never stop a send
        _warn(exc)
        return {name: Circuit(channel, name) for name in providers}
    found = {}
    for name, values in zip(providers, raw, strict=True):
        values = {k.decode(): v.decode(errors="replace") for k, v in values.items()}
        found[name] = Circuit(
            channel=channel,
            provider=name,
            failures=int(values.get("failures") or 0),
            open_until=float(values.get("open_until") or 0),
            opened_at=float(values.get("opened_at") or 0),
            opens=int(values.get("opens") or 0),
            last_error=values.get("last_error", ""),
            last_failure_at=float(values.get("last_failure_at") or 0),
        )
    return found


def probe_acquire(*, channel: str, provider: str) -> bool:
    """Whether this caller may send the half-open circuit's one probe (held for a cool-down at most)."""
    try:
        return bool(redis_cache.client().set(_keys(channel, provider)[1], "1", nx=True, ex=int(cooldown()) or 1))
    except Exception as exc:  # noqa: BLE001
        _warn(exc)
        return True


def failure_record(*, channel: str, provider: str, error: str) -> bool:
    """A call to the provider ended in a retryable failure; True when this opened its circuit."""
    try:
        opened = redis_cache.client().eval(
            _FAILURE, 2, *_keys(channel, provider), time.time(), threshold(), cooldown(), error[:300]
        )
    except Exception as exc:  # noqa: BLE001
        _warn(exc)
        return False
    if opened:
        logger.warning("circuit of %s provider %s opened for %ss: %s", channel, provider, cooldown(), error[:300])
        metrics.circuit_opened(channel=channel, provider=provider)
    return bool(opened)


def success_record(*, channel: str, provider: str) -> None:
    """The provider answered (sent, or refused one delivery for good): the run of failures ends."""
    try:
        redis_cache.client().eval(_SUCCESS, 2, *_keys(channel, provider))
    except Exception as exc:  # noqa: BLE001
        _warn(exc)


def circuit_reset(*, channel: str, provider: str) -> None:
    """Forget a provider's circuit (closed, no failures, no history)."""
    try:
        redis_cache.client().delete(*_keys(channel, provider))
    except Exception as exc:  # noqa: BLE001
        _warn(exc)


def circuits_overview() -> list[Circuit]:
    """Every configured provider's circuit, for the admin (channels with several providers only)."""
    from notifications.backends import providers

    shown = []
    for key in settings.NOTIFICATION_BACKENDS:
        names = [p.name for p in providers(key)]
        if len(names) > 1:
            found = circuits_read(channel=key, providers=names)
            shown.extend(found[name] for name in names)
    return shown

"""The one retry policy: exponential backoff, capped, with a limit of attempts.

Everything that tries again uses it, each with its own settings: a delivery
after a transient provider failure (`NOTIFY_MAX_ATTEMPTS`,
`NOTIFY_RETRY_BASE_SECONDS`, `NOTIFY_RETRY_CAP_SECONDS`, jittered, and a
provider's Retry-After wins), a scheduled job whose run failed or left
deliveries pending (`SCHEDULED_MAX_ATTEMPTS`, `SCHEDULED_RETRY_BASE_SECONDS`,
`SCHEDULED_RETRY_MAX_SECONDS`), a build whose worker hit an unexpected error,
an alert whose deliveries are still pending. Settings are read when asked, so
a changed setting applies to the next retry.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

# A provider's Retry-After is honoured up to this much.
RETRY_AFTER_MAX_SECONDS = 86400


@dataclass(frozen=True)
class RetryPolicy:
    """Defaults, and the settings that override them (None: not configurable)."""

    max_attempts: int
    base_seconds: float
    cap_seconds: float
    max_attempts_setting: str | None = None
    base_setting: str | None = None
    cap_setting: str | None = None
    # Up to this fraction added at random, so an outage does not end in a synchronised stampede.
    jitter: float = 0.0

    def _get(self, name: str | None, default):
        return default if name is None else getattr(settings, name, default)

    def attempts(self) -> int:
        """Tries in all, the first included."""
        return int(self._get(self.max_attempts_setting, self.max_attempts))

    def exhausted(self, attempts: int) -> bool:
        """True once `attempts` tries were made: no more."""
        return attempts >= self.attempts()

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before try number `attempts + 1`: base * 2^(attempts-1), capped, jittered.

        The provider's Retry-After wins when it asks for longer, even above the
        cap (a provider that says "not before" means it), within RETRY_AFTER_MAX.
        """
        base = float(self._get(self.base_setting, self.base_seconds))
        cap = float(self._get(self.cap_setting, self.cap_seconds))
        delay = min(cap, base * 2 ** max(attempts - 1, 0) * (1 + random.random() * self.jitter))
        if retry_after:
            delay = max(
                delay,
                min(float(retry_after), getattr(settings, "NOTIFY_RETRY_AFTER_MAX_SECONDS", RETRY_AFTER_MAX_SECONDS)),
            )
        return delay

    def backoff(self, attempts: int, retry_after: float | None = None) -> timedelta:
        return timedelta(seconds=self.delay(attempts, retry_after))


DELIVERIES = RetryPolicy(
    max_attempts=5,
    base_seconds=30,
    cap_seconds=3600,
    max_attempts_setting="NOTIFY_MAX_ATTEMPTS",
    base_setting="NOTIFY_RETRY_BASE_SECONDS",
    cap_setting="NOTIFY_RETRY_CAP_SECONDS",
    jitter=0.1,
)
SCHEDULED_JOBS = RetryPolicy(
    max_attempts=5,
    base_seconds=30,
    cap_seconds=900,
    max_attempts_setting="SCHEDULED_MAX_ATTEMPTS",
    base_setting="SCHEDULED_RETRY_BASE_SECONDS",
    cap_setting="SCHEDULED_RETRY_MAX_SECONDS",
)
# A build run that ends in an unexpected error: 30 s, then 60 s, then the build fails.
BUILD_RUNS = RetryPolicy(max_attempts=3, base_seconds=30, cap_seconds=60)


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before a delivery's try number `attempts + 1`."""
    return DELIVERIES.delay(attempts, retry_after)

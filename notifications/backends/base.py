"""The channel backend contract.

Like Django's email backends: the base class owns the loop (open, send in
batches, one result per delivery, close); a provider fills in `send_one` or,
when its API takes many recipients per call, `send_batch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from notifications.models import Notification


@dataclass
class Result:
    """What happened to one delivery."""

    ok: bool
    error: str = ""
    provider_message_id: str = ""
    # Worth trying again later (provider 5xx, 429, timeouts) ...
    retryable: bool = False
    # ... and not before this many seconds, when the provider said so (Retry-After).
    retry_after: float | None = None
    # The provider clearly refused before accepting (HTTP 503 or 429, connection
    # refused): the message certainly did not go out, so another provider of
    # the channel may send it. False whenever the outcome is unknown (a timeout,
    # a dropped connection after the request went out, a 500 or 504 that may
    # come after the provider acted): such a delivery is only ever retried on
    # the same provider, or it could arrive twice.
    definite: bool = False
    # The provider refused the recipient's address itself, for good: an unknown
    # mailbox (SMTP 5.1.1), an invalid or blacklisted number. Every later send
    # to it would be refused too, so dispatch puts it on the platform's
    # suppression list. Never set for a refusal of the message or the sender
    # (spam, policy, relay: 5.7.x), which says nothing about the address.
    address_refused: bool = False
    # Who took it: the configured provider of the channel (set by the dispatcher), or
    # the backend's own name for it when it has one (anymail's esp_name, "smtp").
    provider: str = ""
    # Units for channels that fan out below the recipient (push: device tokens).
    units_sent: int = 0
    units_failed: int = 0

    @classmethod
    def sent(cls, provider_message_id: str = "", *, units: int = 1, provider: str = "") -> Result:
        return cls(ok=True, provider_message_id=provider_message_id, units_sent=units, provider=provider)

    @classmethod
    def failed(
        cls,
        error: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        units: int = 1,
        definite: bool = False,
        address_refused: bool = False,
    ) -> Result:
        return cls(
            ok=False,
            error=error,
            retryable=retryable,
            retry_after=retry_after,
            units_failed=units,
            definite=definite,
            address_refused=address_refused,
        )


class BaseBackend:
    """Base class of every channel backend.

    Subclasses set `channel` and implement `send_one` or `send_batch`. The
    pipeline calls `send_groups` with deliveries (Notification rows) of one
    channel and records each group of results as soon as it is known, so a
    crash loses at most the results of the call in flight.
    """

    channel: str = ""
    batch_size: int = 100
    # False for backends that only print or record (console, locmem): nothing
    # reaches anyone, which the system check and /healthz tell the operator.
    real: bool = True

    @classmethod
    def describe(cls) -> dict:
        """What /healthz shows of this backend: a short name and whether it really delivers."""
        return {"backend": cls.__name__.removesuffix("Backend").lower(), "real": cls.real}

    def __init__(self, **options):
        self.options = options

    def open(self) -> None:
        """Acquire connections; called once before the first batch."""

    def close(self) -> None:
        """Release what `open` acquired."""

    def send_one(self, delivery: Notification) -> Result:
        raise NotImplementedError(f"{type(self).__name__} must implement send_one or send_batch")

    def send_batch(self, deliveries: Sequence[Notification]) -> Iterable[Result]:
        for delivery in deliveries:
            yield self.send_one(delivery)

    def send(self, deliveries: Sequence[Notification]) -> Iterator[tuple[Notification, Result]]:
        for group in self.send_groups(deliveries):
            yield from group

    def send_groups(self, deliveries: Sequence[Notification]) -> Iterator[list[tuple[Notification, Result]]]:
        """`send`, in groups of results that became known together; the pipeline records a group at once.

        A `send_batch` that returns a list (or tuple) decided its whole batch
        at once, in one provider call or with no I/O at all: its results are
        one group. One that yields results one by one gets each recorded
        before it makes its next call, so a crash loses at most the result in
        flight.
        """
        self.open()
        try:
            for start in range(0, len(deliveries), self.batch_size):
                batch = deliveries[start : start + self.batch_size]
                results = self.send_batch(batch)
                if isinstance(results, list | tuple):
                    yield list(zip(batch, results, strict=True))
                else:
                    for pair in zip(batch, results, strict=True):
                        yield [pair]
        finally:
            self.close()

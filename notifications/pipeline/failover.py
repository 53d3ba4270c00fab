"""Provider failover: a channel's deliveries over its providers in order, behind circuit breakers.

`ProviderRouter` stands where dispatch used to hold one backend and has the
same `send_groups`. With one provider it only notes the provider's name on
each result. With several (`NOTIFICATION_BACKENDS` lists them in order):

- A delivery whose earlier attempt may have reached a provider (the row's
  `provider` is set: that attempt timed out, or its answer was unclear) goes
  to that provider again, whatever its circuit says. Moving it could make it
  arrive twice.
- Any other delivery goes to the first provider whose circuit admits it:
  closed, or half-open with this caller holding the one probe. While every
  circuit is open, the deliveries are held: dispatch hands them back with no
  attempt spent, due again when the first cool-down ends.
- A delivery the provider refused *definitely* and for now (`Result.definite`
  and `retryable`: HTTP 503 or 429, connection refused, Africa's Talking's
  per-number 500/501) moves at once to the next provider that admits it, in
  the same attempt. Timeouts and unknown outcomes never move; they are
  retried on the same provider with the usual backoff.
- Each provider call's answer feeds that provider's circuit
  (`notifications.circuits`): a group of results that are all retryable
  failures is one failure, anything else ends the run.

A delivery answered by a provider other than the first is recorded with
`rule=failover` and that provider's name, and counted in
`notify_provider_failovers_total`. None of this replaces the pipeline's
guards: rows are still claimed under a lease and recorded only while
pending, and the unique key still holds one row per recipient and channel.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from notifications import circuits, metrics
from notifications.backends import Provider, provider_backend
from notifications.backends.base import Result
from notifications.models import Notification

Pairs = list[tuple[Notification, Result]]
# How long one dispatcher goes on from its read of the circuits before reading them again.
CIRCUIT_REFRESH_SECONDS = 1.0


class ProviderRouter:
    def __init__(self, *, channel: str, providers: Sequence[Provider]):
        self.channel = channel
        self.providers = list(providers)
        self.names = [p.name for p in self.providers]
        # The provider a delivery answered by another one failed over from; none with one provider.
        self.failover_from = self.names[0] if len(self.names) > 1 else ""
        self.primary = self.names[0]
        self._backends = {self.primary: provider_backend(channel, self.providers[0])}
        self.batch_size = self._backends[self.primary].batch_size
        # When held deliveries are due again (every circuit was open), or None.
        self.held_until: datetime | None = None
        self._circuits: dict[str, circuits.Circuit] = {}
        self._read_at = float("-inf")
        self._probes: set[str] = set()
        self._failing: set[str] = set()

    def _backend(self, index: int):
        name = self.names[index]
        if name not in self._backends:
            self._backends[name] = provider_backend(self.channel, self.providers[index])
        return self._backends[name]

    # -- the loop ------------------------------------------------------------------------

    def send_groups(self, deliveries: Sequence[Notification]) -> Iterator[Pairs]:
        self.held_until = None
        if len(self.providers) == 1:
            for group in self._backend(0).send_groups(deliveries):
                # A backend that names the provider itself (anymail's esp_name) keeps its name:
                # receipts find their row by it. Pinning needs names only with several providers.
                yield _named(group, self.primary, keep_own=True)
            return
        if time.monotonic() - self._read_at >= CIRCUIT_REFRESH_SECONDS:
            # Another worker's opening is seen within this; this router's own
            # failures and successes update its copy at once.
            self._circuits = circuits.circuits_read(channel=self.channel, providers=self.names)
            self._read_at = time.monotonic()
        self._probes = set()
        self._held: list[Notification] = []
        for index, rows in self._route(deliveries).items():
            yield from self._send(index, rows)
        if self._held:
            # When the first cool-down ends (a probe in flight elsewhere: shortly).
            soonest = min((c.open_until for c in self._circuits.values() if c.open_until), default=0.0)
            self.held_until = datetime.fromtimestamp(max(soonest, time.time() + 1), UTC)

    def _route(self, deliveries: Sequence[Notification]) -> dict[int, list[Notification]]:
        """Deliveries by the index of the provider they go to; the ones nobody admits are held."""
        routes: dict[int, list[Notification]] = {}
        for delivery in deliveries:
            if delivery.provider in self.names:
                index = self.names.index(delivery.provider)  # its last attempt may have arrived there
            else:
                index = self._admitting(0)
            if index is None:
                self._held.append(delivery)
            else:
                routes.setdefault(index, []).append(delivery)
        return dict(sorted(routes.items()))

    def _admitting(self, start: int) -> int | None:
        """The first provider from `start` on whose circuit lets one more delivery through."""
        now = time.time()
        for index in range(start, len(self.names)):
            name = self.names[index]
            state = self._circuits[name].state(now)
            if state == circuits.CLOSED:
                return index
            if state == circuits.HALF_OPEN and name not in self._probes:
                # Asked once per batch: the probe is one delivery, whoever got it.
                self._probes.add(name)
                if circuits.probe_acquire(channel=self.channel, provider=name):
                    return index
        return None

    def _send(self, index: int, rows: list[Notification]) -> Iterator[Pairs]:
        name = self.names[index]
        if index:
            metrics.failovers(channel=self.channel, from_provider=self.primary, to_provider=name, count=len(rows))
        answered: set = set()
        groups = self._backend(index).send_groups(rows)
        try:
            for group in groups:
                group = _named(group, name)
                answered.update(d.pk for d, _ in group)
                opened = self._feed_circuit(name, group)
                staying, moving = [], []
                for delivery, result in group:
                    movable = not result.ok and result.retryable and result.definite
                    # A row pinned to a provider stays there, even after a clear refusal.
                    (moving if movable and delivery.provider not in self.names else staying).append((delivery, result))
                if staying:
                    yield staying
                if moving:
                    target = self._admitting(index + 1)
                    if target is None:
                        yield moving  # nobody else may take them now: a retry, later
                    else:
                        yield from self._send(target, [d for d, _ in moving])
                if opened:
                    break  # the rest of these rows need not try it: rerouted below
        except Exception as exc:
            # Tell dispatch which delivery was on the wire, and with whom (see _send_claimed).
            if not hasattr(exc, "in_flight"):
                exc.in_flight = next((d for d in rows if d.pk not in answered), None)
                exc.provider = name
            raise
        finally:
            groups.close()
        rest = [d for d in rows if d.pk not in answered]
        if rest:
            # The circuit opened while this batch was under way; rows pinned here stay.
            pinned = [d for d in rest if d.provider in self.names]
            if pinned:
                yield from self._send(index, pinned)
            for target, rerouted in self._route([d for d in rest if d.provider not in self.names]).items():
                yield from self._send(target, rerouted)

    def _feed_circuit(self, name: str, group: Pairs) -> bool:
        """Tell the provider's circuit how its call went; True when this opened it."""
        failures = [r for _, r in group if not r.ok and r.retryable]
        circuit = self._circuits[name]
        if failures and len(failures) == len(group):
            self._failing.add(name)
            if circuits.failure_record(channel=self.channel, provider=name, error=failures[0].error):
                self._circuits[name] = replace(circuit, open_until=time.time() + circuits.cooldown(), failures=0)
                return True
        elif circuit.failures or circuit.open_until or name in self._failing:
            # Only a circuit with something to forget is written: a healthy one costs nothing.
            circuits.success_record(channel=self.channel, provider=name)
            self._failing.discard(name)
            self._circuits[name] = replace(circuit, failures=0, open_until=0.0)
        return False


def _named(group: Pairs, name: str, *, keep_own: bool = False) -> Pairs:
    """The group with each result naming its provider.

    Set in place: a result is read by dispatch before the backend's next one
    is made, and a result a backend shares among deliveries (one bulk call's
    answer) came from this same provider.
    """
    for _, result in group:
        if not (keep_own and result.provider):
            result.provider = name
    return group

"""A channel backend that accepts every delivery at once: benchmarks measure our side, not a provider's."""

from __future__ import annotations

from notifications.backends.base import BaseBackend, Result


class NullBackend(BaseBackend):
    batch_size = 500

    def send_batch(self, deliveries):
        return [Result.sent() for _ in deliveries]

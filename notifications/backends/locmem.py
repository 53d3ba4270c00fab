"""Test backend: records what it sent, per channel, in `outbox`.

Set `fail_for` (addresses or recipient keys) to make chosen deliveries fail.
"""

from __future__ import annotations

from collections import defaultdict

from notifications.backends.base import BaseBackend, Result

outbox: dict[str, list[dict]] = defaultdict(list)
fail_for: dict[str, str] = {}


def reset() -> None:
    outbox.clear()
    fail_for.clear()


class LocmemBackend(BaseBackend):
    real = False

    def send_batch(self, deliveries):
        # Nothing leaves the process: the whole batch is decided at once.
        return [self.send_one(delivery) for delivery in deliveries]

    def send_one(self, delivery):
        error = fail_for.get(delivery.address) or fail_for.get(delivery.recipient_key)
        if error:
            return Result.failed(error)
        outbox[self.channel].append(
            {
                "id": delivery.id,
                "recipient_key": delivery.recipient_key,
                "address": delivery.address,
                "title": delivery.title,
                "body": delivery.body,
                "html": delivery.html,
                "source": delivery.source,
            }
        )
        return Result.sent(f"locmem-{delivery.id}")

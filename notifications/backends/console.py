"""Development backend: prints each delivery instead of sending it."""

from __future__ import annotations

import sys

from notifications.backends.base import BaseBackend, Result


class ConsoleBackend(BaseBackend):
    def __init__(self, stream=None, **options):
        super().__init__(**options)
        self.stream = stream or sys.stdout

    def send_one(self, delivery):
        self.stream.write(
            f"[{self.channel}] to={delivery.address or delivery.recipient_key} "
            f"title={delivery.title!r} body={delivery.body[:200]!r}\n"
        )
        self.stream.flush()
        return Result.sent(f"console-{delivery.id}")

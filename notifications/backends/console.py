"""Development backend: prints each delivery instead of sending it.

Push is printed once per active device of the user, and counted in device
tokens like FCM does: a user without a device is a failed delivery that
reached nobody, not a sent one.
"""

from __future__ import annotations

import sys

from notifications.backends.base import BaseBackend, Result
from notifications.channels import ScheduledChannel, settings_key


class ConsoleBackend(BaseBackend):
    real = False

    def __init__(self, stream=None, **options):
        super().__init__(**options)
        self.stream = stream or sys.stdout

    def send_batch(self, deliveries):
        # Nothing leaves the process: the whole batch is decided at once.
        # The pipeline names the channel by its row name or its settings key
        # ("push", the bulk document's name).
        if settings_key(self.channel) == ScheduledChannel.PUSH:
            from notifications.backends.push import active_devices

            devices = active_devices(deliveries)
            return [
                self._push(delivery, devices.get((delivery.user_id, delivery.platform_id), []))
                for delivery in deliveries
            ]
        return [self.send_one(delivery) for delivery in deliveries]

    def _write(self, delivery, to: str) -> None:
        self.stream.write(f"[{self.channel}] to={to} title={delivery.title!r} body={delivery.body[:200]!r}\n")
        self.stream.flush()

    def _push(self, delivery, devices) -> Result:
        from notifications.backends.push import no_device

        if not devices:
            return no_device()
        for device in devices:
            self._write(delivery, f"{delivery.recipient_key} device={device.id}")
        return Result.sent(f"console-{delivery.id}", units=len(devices))

    def send_one(self, delivery):
        self._write(delivery, delivery.address or delivery.recipient_key)
        return Result.sent(f"console-{delivery.id}")

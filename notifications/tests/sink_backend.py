"""A backend for multi-process tests: every delivery is one line appended to a file.

Worker processes share nothing in memory, so the file is the provider's log:
one line per message that actually went out. `BULK_SINK_HOLD_AFTER=n` makes
the process hang before its (n+1)-th send, after touching `<path>.held`, so a
test can kill it there with a real SIGKILL.
"""

from __future__ import annotations

import os
import time

from notifications.backends.base import BaseBackend, Result


class FileSinkBackend(BaseBackend):
    batch_size = 10

    def __init__(self, **options):
        super().__init__(**options)
        self.path = os.environ["BULK_SINK_PATH"]
        self.hold_after = int(os.environ.get("BULK_SINK_HOLD_AFTER", "0"))
        self.delay = float(os.environ.get("BULK_SINK_DELAY", "0"))

    def _sent_so_far(self) -> int:
        try:
            with open(self.path, "rb") as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    def send_one(self, delivery):
        if self.hold_after and self._sent_so_far() >= self.hold_after:
            with open(self.path + ".held", "w") as f:
                f.write(str(os.getpid()))
            while True:  # a hung provider call; the test kills us here
                time.sleep(1)
        if self.delay:
            time.sleep(self.delay)
        line = f"{delivery.source} {delivery.recipient_key} {os.getpid()}\n".encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return Result.sent(f"sink-{delivery.id}")

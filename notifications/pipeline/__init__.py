"""The one delivery pipeline, a module per stage (see docs/architecture.md, "How a send flows").

- `parts`: the typed parts callers speak in (Recipient, Message, Renderer, Send, SendResult, Outcome)
- `front_door`: `notification_send(_many)`, where every send path ends
- `eligibility`: who may get which channel (address channels, registered channel and recipient filters)
- `rules`: delivery rules apps register (quiet hours, frequency caps ...): per row, go now, wait or be held back
- `build`: the rows of one chunk of recipients, column by column
- `write`: chunked, parallel write transactions and the after-commit announcements
- `sql`: the `INSERT … unnest` that writes rows and the `UPDATE … unnest` that records outcomes
- `dispatch`: claim under a lease, send through the channel backend, record each result
- `retry`: the one retry policy
- `counts`: send counts by source
- `due`: the scheduler's `deliveries` source (due retries, orphaned rows)
- `tuning`: the NOTIFY_* settings and their defaults
"""

from notifications.pipeline.counts import send_counts, send_counts_many
from notifications.pipeline.front_door import notification_send, notification_send_finish, notification_send_many
from notifications.pipeline.parts import Message, Recipient, Renderer, Send, SendResult

__all__ = [
    "Message",
    "Recipient",
    "Renderer",
    "Send",
    "SendResult",
    "notification_send",
    "notification_send_finish",
    "notification_send_many",
    "send_counts",
    "send_counts_many",
]

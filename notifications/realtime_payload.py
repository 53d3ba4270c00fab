"""A new notification as the WebSocket and the v1 inbox show it (the bulk document's shape).

Beside `realtime.py`, which sends it: the in-app backend builds one per
recipient with an open socket, and the v1 inbox serializer answers with the
same dict, so the live message and the inbox list never disagree.
"""

from __future__ import annotations

from notifications.models import InboxStatus, Notification

# The columns `created_notification_payload` reads: what an inbox page loads.
PAYLOAD_FIELDS = ("id", "user_id", "notification_type", "level", "channel", "title", "body", "status", "created_at")


def created_notification_payload(n: Notification) -> dict:
    """A notification (or a row-like object with `PAYLOAD_FIELDS`) as the WebSocket and inbox show it."""
    return {
        "id": str(n.id),
        "recipient_id": n.user_id,
        "type": n.notification_type,
        "level": n.level,
        "delivery_channel": n.channel,
        "payload": {"headline": n.title, "message": n.body},
        "is_read": n.status != InboxStatus.UNREAD,
        "timestamp": n.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }

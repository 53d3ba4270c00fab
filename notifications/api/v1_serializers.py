from __future__ import annotations

from rest_framework import serializers

from notifications.models import InboxStatus, Notification

# The columns `created_notification_payload` reads: what an inbox page loads.
PAYLOAD_FIELDS = ("id", "user_id", "notification_type", "level", "channel", "title", "body", "status", "created_at")


def created_notification_payload(n: Notification) -> dict:
    """A notification as the bulk document's WebSocket and inbox show it."""
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


class V1NotificationSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    recipient_id = serializers.IntegerField()
    type = serializers.CharField()
    level = serializers.CharField()
    delivery_channel = serializers.CharField()
    payload = serializers.DictField(
        help_text="`headline` and `message`: plain text, never HTML; escape them when placing them in a page."
    )
    is_read = serializers.BooleanField()
    timestamp = serializers.CharField()

    def to_representation(self, instance):
        return created_notification_payload(instance)

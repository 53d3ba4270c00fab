from __future__ import annotations

from rest_framework import serializers

from notifications.realtime_payload import created_notification_payload


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

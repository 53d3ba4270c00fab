"""Shapes of the webhook endpoints of `/api/notification/v1/platforms/{platform_key}/webhooks/`."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from webhooks.events import EVENT_TYPES
from webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage


def _event_type() -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=EVENT_TYPES)


class EndpointInSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="http(s) URL on a public address")
    event_types = serializers.ListField(child=_event_type(), min_length=1, max_length=len(EVENT_TYPES))
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    is_active = serializers.BooleanField(required=False, default=True)


class EndpointPatchSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    event_types = serializers.ListField(child=_event_type(), min_length=1, max_length=len(EVENT_TYPES), required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False, help_text="true enables a disabled endpoint again")


class EndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "is_active",
            "failing_since",
            "disabled_at",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="whsec_... signing secret (also at .../secret/)")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="whsec_... signing secret")


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["created_at", "status_code", "error", "duration_ms"]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    webhook_id = serializers.CharField(read_only=True, help_text="The webhook-id header; receivers de-duplicate on it")

    class Meta:
        model = WebhookMessage
        fields = [
            "id",
            "webhook_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "delivered_at",
            "created_at",
        ]
        read_only_fields = fields


class MessageDetailSerializer(MessageSerializer):
    payload = serializers.JSONField(read_only=True)
    attempt_log = AttemptSerializer(many=True, read_only=True)

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "payload", "attempt_log"]
        read_only_fields = fields


class MessageListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=MessageStatus.values, required=False)
    event_type = serializers.ChoiceField(choices=EVENT_TYPES, required=False)
    page = serializers.IntegerField(required=False, min_value=1, max_value=settings.API_MAX_PAGE, default=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=100, default=20)


class ReplayedSerializer(serializers.Serializer):
    replayed = serializers.IntegerField()

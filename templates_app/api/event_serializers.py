"""Input validation and response shapes of the events endpoint."""

from __future__ import annotations

from rest_framework import serializers

from notifications.models import Channel
from templates_app.api.common import StrictSerializer, bounded_context


class RecipientField(serializers.JSONField):
    """A username or email (string), a user id (integer), or {user_id|username|email, context}."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if isinstance(value, bool) or not isinstance(value, (str, int, dict)):
            raise serializers.ValidationError("A recipient is a username, email, user id or object.")
        if isinstance(value, dict):
            keys = {"user_id", "username", "email"} & set(value)
            if len(keys) != 1:
                raise serializers.ValidationError("Give exactly one of user_id, username or email.")
            if set(value) - {"user_id", "username", "email", "context"}:
                raise serializers.ValidationError("Recipient objects take user_id, username or email, and context.")
            if not isinstance(value.get("context", {}), dict):
                raise serializers.ValidationError("context must be an object.")
        if isinstance(value, str) and not value.strip():
            raise serializers.ValidationError("Empty recipient.")
        return value


class EventIn(StrictSerializer):
    type = serializers.CharField(max_length=100)
    recipients = serializers.ListField(child=RecipientField(), required=False, default=list)
    context = serializers.DictField(
        required=False,
        default=dict,
        validators=[bounded_context],
        help_text="Template variables. Values are text: HTML-escaped where an HTML template places them, "
        "never interpreted as HTML.",
    )
    channels = serializers.ListField(child=serializers.ChoiceField(choices=Channel.choices), required=False)
    event_id = serializers.CharField(
        max_length=200, required=False, help_text="Your idempotency key: the same event is never delivered twice."
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not attrs.get("recipients") and attrs["type"] != "HUMAN_SUPPORT_NOTIFICATION":
            raise serializers.ValidationError({"recipients": ["This list may not be empty."]})
        return attrs


class DeliveryCountsOut(serializers.Serializer):
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Waiting for a retry or for a delivery rule's time (quiet hours)")
    suppressed = serializers.IntegerField(help_text="Held back by a delivery rule; never sent")
    opted_out = serializers.IntegerField()


class DigestJoinOut(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["leading", "trailing"])
    channels = serializers.ListField(child=serializers.CharField(), help_text="The channels collected into digests.")
    joined = serializers.IntegerField(help_text="Recipients whose digest the event joined (sent later).")
    sent_at_once = serializers.IntegerField(
        help_text="Recipients to whom it went out at once on those channels too (the first of a leading window)."
    )
    goes_out_at = serializers.DateTimeField(allow_null=True, help_text="When the earliest of those digests goes out.")


class EventOut(serializers.Serializer):
    id = serializers.UUIDField()
    event_id = serializers.CharField()
    type = serializers.CharField()
    status = serializers.ChoiceField(choices=["processed", "skipped"])
    reason = serializers.CharField(allow_null=True)
    template = serializers.JSONField(allow_null=True)
    channels = serializers.ListField(child=serializers.CharField())
    recipients = serializers.JSONField()
    deliveries = serializers.DictField(child=DeliveryCountsOut())
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    pending = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    opted_out = serializers.IntegerField()
    digest = DigestJoinOut(
        allow_null=True,
        help_text="Set when the type is digested on this platform: its digested channels are not in `deliveries` "
        "for the recipients who joined a digest. Null otherwise.",
    )

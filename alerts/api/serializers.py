"""Shapes of the `/alerts` surface: camelCase fields in a `{"data": ...}` envelope."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from alerts.models import Alert, AlertType, timing_errors
from alerts.selectors import ORDERINGS
from notifications.bounds import BIGINT_MAX, as_utc, date_horizon, horizon_text

# Longest alert message; titles are bounded by the model (255).
MESSAGE_MAX = 10_000


def iso_utc(value: datetime | None) -> str | None:
    """UTC with a `Z`; whole seconds when there is no fraction, else milliseconds."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    spec = "seconds" if value.microsecond == 0 else "milliseconds"
    return value.isoformat(timespec=spec).replace("+00:00", "Z")


class TimestampField(serializers.DateTimeField):
    """An ISO 8601 timestamp that must say its timezone; rendered in UTC.

    DRF's own field would quietly read a naive time in the server's zone.
    """

    default_error_messages = {
        "invalid": "Enter an ISO 8601 timestamp, e.g. 2026-06-15T09:00:00Z.",
        "naive": "Timestamp must include a timezone, e.g. 2026-06-15T09:00:00Z or 2026-06-15T12:00:00+03:00.",
        "range": "Timestamp is out of range.",
        "horizon": "Timestamp may be at most {horizon} ahead.",
    }

    def __init__(self, *args, horizon: bool = False, **kwargs):
        # horizon: a time something happens at, bounded by INPUT_DATE_HORIZON_DAYS (filters are not).
        self.horizon = horizon
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            value = parse_datetime(data.strip())
        except ValueError:
            value = None
        if value is None:
            self.fail("invalid")
        if value.tzinfo is None or value.utcoffset() is None:
            self.fail("naive")
        value = as_utc(value)
        if value is None:
            self.fail("range")
        if self.horizon and value > date_horizon():
            self.fail("horizon", horizon=horizon_text())
        return value

    def to_representation(self, value):
        return iso_utc(value)


class AlertSerializer(serializers.ModelSerializer):
    """An alert as the document's examples show it."""

    createdAt = TimestampField(source="created_at", read_only=True)
    isRead = serializers.BooleanField(source="is_read", read_only=True)
    isEvent = serializers.BooleanField(source="is_event", read_only=True)
    scheduledAt = TimestampField(source="scheduled_at", read_only=True, allow_null=True)
    notifyAt = TimestampField(source="notify_at", read_only=True, allow_null=True)

    class Meta:
        model = Alert
        fields = ["id", "title", "message", "type", "createdAt", "isRead", "isEvent", "scheduledAt", "notifyAt"]
        read_only_fields = fields


class AlertWriteSerializer(serializers.Serializer):
    """Body of POST /alerts (and, with partial=True, of PUT /alerts/{id})."""

    title = serializers.CharField(max_length=255)
    message = serializers.CharField(max_length=MESSAGE_MAX)
    type = serializers.ChoiceField(choices=AlertType.choices, default=AlertType.INFO)
    isRead = serializers.BooleanField(source="is_read", default=False)
    isEvent = serializers.BooleanField(source="is_event", default=False)
    scheduledAt = TimestampField(
        source="scheduled_at",
        required=False,
        allow_null=True,
        horizon=True,
        help_text="When the event takes place; at most INPUT_DATE_HORIZON_DAYS (default 5 years) ahead.",
    )
    notifyAt = TimestampField(
        source="notify_at",
        required=False,
        allow_null=True,
        horizon=True,
        help_text="When to notify; at most INPUT_DATE_HORIZON_DAYS (default 5 years) ahead.",
    )

    def validate(self, attrs):
        # On update the rules apply to the alert as it will be, not to the body alone.
        instance = self.instance

        def current(field):
            if field in attrs:
                return attrs[field]
            return getattr(instance, field) if instance is not None else None

        errors = timing_errors(
            is_event=current("is_event"), scheduled_at=current("scheduled_at"), notify_at=current("notify_at")
        )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class AlertCreateSerializer(AlertWriteSerializer):
    userId = serializers.IntegerField(
        source="user_id",
        required=False,
        min_value=1,
        max_value=BIGINT_MAX,
        help_text="Create the alert for this user (service accounts with alerts.create_for_user only).",
    )


class AlertListQuerySerializer(serializers.Serializer):
    """Query parameters of GET /alerts."""

    page = serializers.IntegerField(min_value=1, max_value=settings.API_MAX_PAGE, default=1)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
    isRead = serializers.BooleanField(required=False, help_text="Only read (true) or unread (false) alerts.")
    type = serializers.CharField(
        required=False, help_text="One type or several, comma-separated: info, warning, critical."
    )
    isEvent = serializers.BooleanField(required=False, help_text="Only events (true) or plain alerts (false).")
    to = TimestampField(required=False, help_text="Events scheduled at or before this time.")
    archived = serializers.BooleanField(default=False, help_text="List archived alerts instead of current ones.")
    ordering = serializers.ChoiceField(
        choices=list(ORDERINGS), default="-createdAt", help_text="Sort order; a leading '-' means descending."
    )

    def get_fields(self):
        # `from` is a Python keyword, so it cannot be declared like the others.
        fields = super().get_fields()
        fields["from"] = TimestampField(required=False, help_text="Events scheduled at or after this time.")
        return fields

    def validate_type(self, value):
        types = [t.strip() for t in value.split(",") if t.strip()]
        unknown = [t for t in types if t not in AlertType.values]
        if unknown or not types:
            raise serializers.ValidationError(
                f"Unknown type {', '.join(unknown) or value!r}; use info, warning or critical."
            )
        return types

    def validate(self, attrs):
        start, end = attrs.get("from"), attrs.get("to")
        if start is not None and end is not None and start > end:
            raise serializers.ValidationError({"to": "to must not be before from."})
        return attrs


class AlertListMetaSerializer(serializers.Serializer):
    page = serializers.IntegerField()
    limit = serializers.IntegerField()
    total = serializers.IntegerField(help_text="Alerts matching the filters.")
    totalPages = serializers.IntegerField()
    unreadCount = serializers.IntegerField(help_text="All unread, unarchived alerts of the caller (the badge).")


class AlertListEnvelopeSerializer(serializers.Serializer):
    data = AlertSerializer(many=True)
    meta = AlertListMetaSerializer()


class AlertEnvelopeSerializer(serializers.Serializer):
    data = AlertSerializer()


class AlertDeletedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    deleted = serializers.BooleanField()


class AlertDeletedEnvelopeSerializer(serializers.Serializer):
    data = AlertDeletedSerializer()
    message = serializers.CharField()


class AlertReadAllSerializer(serializers.Serializer):
    updated = serializers.IntegerField(help_text="How many alerts were marked read.")


class AlertReadAllEnvelopeSerializer(serializers.Serializer):
    data = AlertReadAllSerializer()


class AlertErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    detail = serializers.CharField(required=False)
    fields = serializers.DictField(required=False, help_text="Messages per field of a 400.")


class AlertErrorSerializer(serializers.Serializer):
    error = AlertErrorDetailSerializer()

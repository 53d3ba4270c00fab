"""Serializers of the IBL inbox, push-device and SMTP endpoints (`/api/notification/v1/`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from notifications.models import Channel, DeviceRegistration, InboxStatus, Notification, PlatformSMTPSettings
from notifications.sanitize import sanitize_html

MAX_IDS = 1000
MAX_PAGE_SIZE = 100


class UpperChoiceField(serializers.ChoiceField):
    """Statuses are upper case in the documents; accept `read` as well as `READ`."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = data.strip().upper()
        return super().to_internal_value(data)


class InboxStatusField(UpperChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=InboxStatus.choices, **kwargs)


class ChannelField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=Channel.choices, **kwargs)


@extend_schema_field(OpenApiTypes.STR)
class DateOrDateTimeField(serializers.Field):
    """`2026-04-11` or an ISO 8601 date-time; dates and naive times are UTC.

    Internal value: (instant, is_date_only).
    """

    default_error_messages = {
        "invalid": "Enter a date (YYYY-MM-DD) or an ISO 8601 date-time, e.g. 2026-04-11 or 2026-04-11T08:30:00Z."
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        text = data.strip()
        moment = None
        # An unencoded "+02:00" arrives as " 02:00"; "2026-04-11 08:30" is a valid spelling too.
        candidates = [text]
        if " " in text:
            head, _, tail = text.rpartition(" ")
            candidates.append(f"{head}+{tail}")
        try:
            day = parse_date(text)
            if day is not None:
                return datetime.combine(day, time.min, tzinfo=UTC), True
            for candidate in candidates:
                moment = parse_datetime(candidate)
                if moment is not None:
                    break
        except ValueError:
            self.fail("invalid")
        if moment is None:
            self.fail("invalid")
        if timezone.is_naive(moment):
            moment = moment.replace(tzinfo=UTC)
        return moment, False

    def to_representation(self, value):
        return value


class InboxListQuerySerializer(serializers.Serializer):
    status = InboxStatusField(required=False)
    channel = ChannelField(required=False)
    exclude_channel = ChannelField(required=False)
    start_date = DateOrDateTimeField(required=False)
    end_date = DateOrDateTimeField(required=False)
    page = serializers.IntegerField(required=False, min_value=1, max_value=settings.API_MAX_PAGE, default=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE, default=20)

    def validate(self, attrs):
        start = attrs.pop("start_date", None)
        end = attrs.pop("end_date", None)
        created_from = start[0] if start else None
        created_before = None
        if end:
            moment, date_only = end
            # "On or before this date": the whole of that day; a date-time is itself included.
            created_before = moment + (timedelta(days=1) if date_only else timedelta(microseconds=1))
        if created_from and created_before and created_before <= created_from:
            raise serializers.ValidationError({"end_date": ["end_date must not be before start_date."]})
        attrs["created_from"] = created_from
        attrs["created_before"] = created_before
        return attrs


class InboxCountQuerySerializer(serializers.Serializer):
    status = InboxStatusField(required=False)
    channel = ChannelField(required=False)


@extend_schema_field(OpenApiTypes.STR)
class NotificationIdsField(serializers.Field):
    """Comma-separated UUIDs, as the document sends them; a JSON list is accepted too."""

    default_error_messages = {
        "invalid": "Not a valid notification id: {value}.",
        "empty": "Give at least one notification id.",
        "too_many": f"At most {MAX_IDS} notification ids per request.",
        "type": "Give a comma-separated string of notification ids.",
    }

    def to_internal_value(self, data):
        if isinstance(data, str):
            parts = [p.strip() for p in data.split(",")]
        elif isinstance(data, list) and all(isinstance(p, str) for p in data):
            parts = [p.strip() for p in data]
        else:
            self.fail("type")
        parts = [p for p in parts if p]
        if not parts:
            self.fail("empty")
        if len(parts) > MAX_IDS:
            self.fail("too_many")
        ids = []
        for part in parts:
            try:
                value = uuid.UUID(part)
            except ValueError:
                self.fail("invalid", value=part)
            if value not in ids:
                ids.append(value)
        return ids

    def to_representation(self, value):
        return ",".join(str(v) for v in value)


class StatusUpdateSerializer(serializers.Serializer):
    notification_id = NotificationIdsField(help_text="Comma-separated notification UUIDs")
    status = InboxStatusField(help_text="READ, UNREAD or CANCELLED")


class BulkStatusSerializer(serializers.Serializer):
    status = InboxStatusField(help_text="READ, UNREAD or CANCELLED")


class MarkAllReadSerializer(serializers.Serializer):
    notification_ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, max_length=MAX_IDS, help_text="Only these; all unread if omitted"
    )


class IBLNotificationSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", allow_null=True, read_only=True)
    body = serializers.SerializerMethodField(
        help_text="HTML: the rendered full body (may contain HTML, IBL §7.1), always passed through the one "
        "sanitiser (no scripts, event handlers or javascript: URLs), so it can be inserted into a page as HTML."
    )

    class Meta:
        model = Notification
        fields = [
            "id",
            "username",
            "title",
            "body",
            "status",
            "channel",
            "context",
            "short_message",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_body(self, obj) -> str:
        # The rendered full body: the text body, or the HTML one for mail rendered only as HTML.
        # The document lets it carry HTML, so clients insert it as HTML: both go through the
        # sanitiser here, whatever wrote the row (templates with event values, bulk, older versions).
        return sanitize_html(obj.body or obj.html)


class IBLNotificationPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.IntegerField(allow_null=True, help_text="Next page number")
    previous = serializers.IntegerField(allow_null=True, help_text="Previous page number")
    results = IBLNotificationSerializer(many=True)


# --- push devices -------------------------------------------------------------------


class FCMTokenSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, help_text="Device or app name")
    registration_id = serializers.CharField(max_length=4096, help_text="FCM device registration token")
    active = serializers.BooleanField(default=True)
    cloud_message_type = UpperChoiceField(
        choices=DeviceRegistration.CloudMessageType.values, default=DeviceRegistration.CloudMessageType.FCM
    )
    application_id = serializers.RegexField(
        r"^[A-Za-z0-9._:-]+$", max_length=64, default="ibl_fcm_app", help_text="Application identifier"
    )
    type = serializers.ChoiceField(
        choices=["ios", "android", "web"],
        required=False,
        help_text="Optional device platform (fcm-django's `type`)",
    )


class FCMTokenDeleteSerializer(serializers.Serializer):
    registration_id = serializers.CharField(max_length=4096, help_text="Device registration token to remove")


# --- SMTP ---------------------------------------------------------------------------


class SMTPTestSerializer(serializers.Serializer):
    smtp_host = serializers.CharField(max_length=255, help_text="SMTP server host name")
    smtp_port = serializers.IntegerField(min_value=1, max_value=65535)
    # Required as the document says, but may be blank for a server without AUTH.
    smtp_username = serializers.CharField(max_length=255, allow_blank=True, trim_whitespace=False)
    smtp_password = serializers.CharField(
        max_length=1024, allow_blank=True, trim_whitespace=False, write_only=True, style={"input_type": "password"}
    )
    use_tls = serializers.BooleanField(default=True, help_text="STARTTLS")
    use_ssl = serializers.BooleanField(default=False, help_text="TLS from the first byte")
    test_email = serializers.EmailField(help_text="Recipient of the test email")
    from_email = serializers.EmailField(required=False, help_text="Sender; defaults to smtp_username")

    def validate(self, attrs):
        if attrs["use_tls"] and attrs["use_ssl"]:
            raise serializers.ValidationError(
                {"use_ssl": ["use_tls and use_ssl are mutually exclusive: use_tls with port 587, use_ssl with 465."]}
            )
        if not attrs.get("from_email"):
            try:
                attrs["from_email"] = serializers.EmailField().run_validation(attrs["smtp_username"].strip())
            except serializers.ValidationError:
                raise serializers.ValidationError(
                    {"from_email": ["Give from_email: smtp_username is not an email address to send from."]}
                ) from None
        return attrs


class SMTPSettingsSerializer(serializers.Serializer):
    """A platform's SMTP server, named like the test-smtp request so one form serves both."""

    smtp_host = serializers.CharField(max_length=255)
    smtp_port = serializers.IntegerField(min_value=1, max_value=65535, default=587)
    smtp_username = serializers.CharField(max_length=255, allow_blank=True, trim_whitespace=False, default="")
    smtp_password = serializers.CharField(
        max_length=1024,
        allow_blank=True,
        trim_whitespace=False,
        write_only=True,
        required=False,
        style={"input_type": "password"},
        help_text="Write-only. Omit to keep the stored password; an empty string removes it.",
    )
    use_tls = serializers.BooleanField(default=True)
    use_ssl = serializers.BooleanField(default=False)
    from_email = serializers.EmailField(allow_blank=True, default="", help_text="Sender of this platform's mail")
    timeout = serializers.IntegerField(min_value=1, max_value=60, default=10, help_text="Seconds per SMTP operation")
    is_active = serializers.BooleanField(default=True, help_text="False: keep the settings but use the default server")

    def validate(self, attrs):
        tls = attrs.get("use_tls", getattr(self.instance, "use_tls", False))
        ssl = attrs.get("use_ssl", getattr(self.instance, "use_ssl", False))
        if tls and ssl:
            raise serializers.ValidationError(
                {"use_ssl": ["use_tls and use_ssl are mutually exclusive: use_tls with port 587, use_ssl with 465."]}
            )
        return attrs


class SMTPSettingsOutSerializer(serializers.Serializer):
    platform = serializers.CharField()
    is_inherited = serializers.BooleanField(
        help_text="True: no platform server is in use and mail goes through the project's default server"
    )
    smtp_host = serializers.CharField(allow_null=True)
    smtp_port = serializers.IntegerField(allow_null=True)
    smtp_username = serializers.CharField(allow_null=True)
    has_password = serializers.BooleanField(
        help_text="A password is stored and readable (False after a SECRET_KEY change: enter it again)"
    )
    use_tls = serializers.BooleanField(allow_null=True)
    use_ssl = serializers.BooleanField(allow_null=True)
    from_email = serializers.CharField(allow_null=True)
    timeout = serializers.IntegerField(allow_null=True)
    is_active = serializers.BooleanField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)


def smtp_settings_payload(platform, obj: PlatformSMTPSettings | None) -> dict:
    if obj is None:
        return {
            "platform": platform.key,
            "is_inherited": True,
            "smtp_host": None,
            "smtp_port": None,
            "smtp_username": None,
            "has_password": False,
            "use_tls": None,
            "use_ssl": None,
            "from_email": None,
            "timeout": None,
            "is_active": None,
            "updated_at": None,
        }
    return SMTPSettingsOutSerializer(
        {
            "platform": platform.key,
            "is_inherited": not obj.is_active,
            "smtp_host": obj.host,
            "smtp_port": obj.port,
            "smtp_username": obj.username,
            "has_password": bool(obj.password),
            "use_tls": obj.use_tls,
            "use_ssl": obj.use_ssl,
            "from_email": obj.from_email,
            "timeout": obj.timeout,
            "is_active": obj.is_active,
            "updated_at": obj.updated_at,
        }
    ).data

"""Request validation and response shapes of the builder (IBL §7.5)."""

from __future__ import annotations

import json

from django.http import QueryDict
from django.utils import timezone
from rest_framework import serializers

from builder import templating
from builder.models import Build, BuildRecipient, BuildStatus, RecipientStatus
from notifications.bounds import date_horizon, horizon_text
from notifications.models import Channel

# Fields a multipart request (one carrying CSV files) sends as JSON text.
_JSON_FIELDS = ("sources", "template_data", "context", "channels")


def request_payload(data) -> dict:
    """The request body as plain data; multipart forms carry the structured fields as JSON text."""
    if not isinstance(data, QueryDict):
        return data if isinstance(data, dict) else {}
    payload: dict = {}
    for key in data:
        values = data.getlist(key)
        if key == "channels" and len(values) > 1:
            payload[key] = values
            continue
        value = values[-1] if values else ""
        if key in _JSON_FIELDS and isinstance(value, str):
            stripped = value.strip()
            if key == "channels" and stripped and stripped[0] not in "[{":
                payload[key] = [v for v in stripped.split(",") if v.strip()]
                continue
            try:
                value = json.loads(stripped) if stripped else None
            except ValueError:
                raise serializers.ValidationError({key: ["Not valid JSON."]}) from None
        payload[key] = value
    return payload


class SourceInputSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="email, username, platform, csv, department, pathway, program, usergroup")
    data = serializers.CharField(
        required=False,
        help_text="The source value; for csv, optionally the multipart field of the file (default file_0).",
    )


class ValidateSourceSerializer(serializers.Serializer):
    type = serializers.CharField()
    data = serializers.JSONField(required=False, help_text="Required except for csv sources.")
    file_0 = serializers.FileField(required=False, help_text="The CSV file of a csv source (multipart).")


class TemplateDataSerializer(serializers.Serializer):
    message_title = serializers.CharField(max_length=500)
    message_body = serializers.CharField(max_length=20000, help_text="Supports template syntax ({{ username }}).")


class PreviewSerializer(serializers.Serializer):
    template_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=64)
    template_data = TemplateDataSerializer(required=False, allow_null=True)
    channels = serializers.ListField(child=serializers.IntegerField(), allow_empty=False, max_length=20)
    sources = serializers.ListField(child=serializers.JSONField(), allow_empty=False, max_length=100)
    context = serializers.DictField(required=False, default=dict)
    process_on = serializers.DateTimeField(required=False, allow_null=True)

    def __init__(self, *args, platform=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.platform = platform

    def validate_channels(self, value: list[int]) -> list[str]:
        known = dict(templating.channel_choices())
        names: list[str] = []
        for channel_id in value:
            name = known.get(channel_id)
            if name is None:
                raise serializers.ValidationError(
                    f"Unknown channel id {channel_id}; the context endpoint lists the channels."
                )
            if name == Channel.PUSH and self.platform is not None and not self.platform.push_enabled:
                raise serializers.ValidationError("Push notifications are disabled on this platform.")
            if name not in names:
                names.append(name)
        return names

    def validate_process_on(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("process_on must be in the future.")
        if value is not None and value > date_horizon():
            raise serializers.ValidationError(f"process_on may be at most {horizon_text()} ahead.")
        return value

    def validate(self, attrs):
        has_template = bool(attrs.get("template_id"))
        has_data = attrs.get("template_data") is not None
        if has_template == has_data:
            raise serializers.ValidationError("Provide either template_id or template_data, not both.")
        return attrs


class SendSerializer(serializers.Serializer):
    build_id = serializers.UUIDField()
    force = serializers.BooleanField(
        required=False, default=False, help_text="Send even though a similar notification went out in the last 24 h."
    )


# --- responses -------------------------------------------------------------------------


def recipient_payload(row: BuildRecipient, build: Build) -> dict:
    account = row.recipient_key.startswith("user:")
    return {
        "username": row.username if account else None,
        "email": row.email,
        "status": row.status,
        "has_account": account,
        # Someone known only by an address is emailed, whatever else the build uses.
        "channels": list(build.channels) if account else [Channel.EMAIL],
        "error": row.error,
    }


class RecipientSerializer(serializers.Serializer):
    username = serializers.CharField(allow_null=True, help_text="null for an address without an account")
    email = serializers.CharField()
    status = serializers.ChoiceField(choices=RecipientStatus.choices)
    has_account = serializers.BooleanField()
    channels = serializers.ListField(child=serializers.CharField())
    error = serializers.CharField()


def _user(user) -> str | None:
    return user.username if user is not None else None


def build_payload(build: Build, *, progress: dict | None = None, deliveries: dict | None = None) -> dict:
    if progress is None:
        done = build.sent_count + build.failed_count
        progress = {
            "total": build.recipient_count,
            "pending": max(build.recipient_count - done, 0),
            "sent": build.sent_count,
            "failed": build.failed_count,
            "percent": round(100 * done / build.recipient_count, 1) if build.recipient_count else 100.0,
        }
    payload = {
        "build_id": str(build.pk),
        "status": build.status,
        "count": build.recipient_count,
        "template_id": build.template_id or None,
        "template_name": build.template_name or None,
        "template_type": build.template_type or None,
        "template_data": build.template_data,
        "context": build.context,
        "channels": build.channels,
        "sources": build.sources,
        "process_on": build.process_on,
        "warning": build.warning or None,
        "similar_build_id": str(build.similar_build_id) if build.similar_build_id else None,
        "created_by": _user(build.created_by),
        "created_at": build.created_at,
        "submitted_by": _user(build.submitted_by),
        "submitted_at": build.submitted_at,
        "forced_by": _user(build.forced_by),
        "forced_at": build.forced_at,
        "started_at": build.started_at,
        "completed_at": build.completed_at,
        "cancelled_by": _user(build.cancelled_by),
        "cancelled_at": build.cancelled_at,
        "error": build.error,
        "progress": progress,
    }
    if deliveries is not None:
        payload["deliveries"] = deliveries
    return payload


class ProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    pending = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    percent = serializers.FloatField()


class BuildSerializer(serializers.Serializer):
    build_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=BuildStatus.choices)
    count = serializers.IntegerField()
    template_id = serializers.CharField(allow_null=True)
    template_name = serializers.CharField(allow_null=True)
    template_type = serializers.CharField(allow_null=True)
    template_data = TemplateDataSerializer(allow_null=True)
    context = serializers.DictField()
    channels = serializers.ListField(child=serializers.CharField())
    sources = serializers.ListField(child=serializers.DictField())
    process_on = serializers.DateTimeField(allow_null=True)
    warning = serializers.CharField(allow_null=True)
    similar_build_id = serializers.UUIDField(allow_null=True)
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    submitted_by = serializers.CharField(allow_null=True)
    submitted_at = serializers.DateTimeField(allow_null=True)
    forced_by = serializers.CharField(allow_null=True, help_text="Who sent it despite a duplicate warning.")
    forced_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    cancelled_by = serializers.CharField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField()
    progress = ProgressSerializer(help_text="Recipients per status.")


class BuildDetailSerializer(BuildSerializer):
    deliveries = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text="Per channel: deliveries sent, failed, pending (a retry, or deferred by a delivery rule) "
        "and suppressed (held back by a delivery rule).",
    )

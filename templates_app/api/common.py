"""What the templates API's modules share: OpenAPI tags and error shapes, strict input, bounded context."""

from __future__ import annotations

import json
import re
import zoneinfo

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

TAG_TEMPLATES = ["notification templates"]
TAG_EVENTS = ["notification events"]
TAG_PREFS = ["notification preferences"]
DRF_ERROR = inline_serializer("IblError", {"detail": serializers.CharField()})
FIELD_ERRORS = OpenApiResponse(description="Validation errors, keyed by field: `{field: [message, ...]}`")


def _validation(exc: DjangoValidationError) -> serializers.ValidationError:
    if hasattr(exc, "message_dict"):
        return serializers.ValidationError(exc.message_dict)
    return serializers.ValidationError({"detail": exc.messages})


HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_CONTEXT_BYTES = 64 * 1024


def bounded_context(value: dict) -> dict:
    if len(json.dumps(value, default=str)) > MAX_CONTEXT_BYTES:
        raise serializers.ValidationError(f"Context is larger than {MAX_CONTEXT_BYTES // 1024} KB.")
    return value


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, instead of silently ignoring a typo."""

    def validate(self, attrs):
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"Unknown field. Writable fields: {', '.join(sorted(self.fields))}."] for name in unknown}
                )
        return attrs


def _timezone(value: str) -> str:
    if value not in zoneinfo.available_timezones():
        raise serializers.ValidationError(f"Unknown timezone {value!r}: use an IANA name such as Africa/Addis_Ababa.")
    return value


def _hhmm(value: str) -> str:
    if not HHMM.match(value):
        raise serializers.ValidationError("Use HH:MM (24-hour), e.g. 09:30.")
    return value

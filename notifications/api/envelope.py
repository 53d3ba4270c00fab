"""The `/api/v1/` success envelope (`domain.Response` of the bulk document)."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.response import Response


def ok(message: str, data=None, *, status: int = 200, metadata=None, headers=None) -> Response:
    return Response(
        {"message": message, "data": data, "success": True, "status_code": status, "metadata": metadata},
        status=status,
        headers=headers,
    )


def envelope_schema(name: str, data_field: serializers.Field) -> serializers.Serializer:
    """OpenAPI shape of an envelope around `data_field`."""
    return inline_serializer(
        name,
        {
            "message": serializers.CharField(),
            "data": data_field,
            "success": serializers.BooleanField(),
            "status_code": serializers.IntegerField(),
            "metadata": serializers.JSONField(allow_null=True),
        },
    )


V1_ERROR = inline_serializer("V1Error", {"message": serializers.CharField(), "error": serializers.CharField()})

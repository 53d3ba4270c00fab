"""Token exchange and health: shared by every surface."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from notifications.api.errors import ApiError
from notifications.health import health_report
from notifications.models import AuthToken


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)
    name = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Device or client this token is for."
    )


class LoginThrottle(AnonRateThrottle):
    scope = "login"
    rate = "20/min"


class TokenView(APIView):
    """Exchange a username and password for a new API token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            200: inline_serializer(
                "TokenResponse", {"token": serializers.CharField(), "expires_at": serializers.DateTimeField()}
            )
        },
        tags=["auth"],
    )
    def post(self, request):
        ser = TokenRequestSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        user = authenticate(request, username=ser.validated_data["username"], password=ser.validated_data["password"])
        if user is None or not user.is_active:
            raise ApiError("Invalid username or password", status=400, code="invalid_credentials")
        token, raw = AuthToken.issue(user=user, name=ser.validated_data.get("name") or "api")
        return Response({"token": raw, "expires_at": token.expires_at})


def healthz(request):
    """Database, Redis and due-work sweeping: 200 when all are well, 503 otherwise (see notifications/health.py)."""
    healthy, body = health_report()
    return JsonResponse(body, status=200 if healthy else 503)

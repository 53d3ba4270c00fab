"""Token exchange and health: shared by every surface."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.db import connection
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from notifications.api.errors import ApiError
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
    """Database and Redis reachability: 200 when both answer, 503 otherwise."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        import redis
        from django.conf import settings

        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {exc.__class__.__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )

"""Platform SMTP of IBL §7.4 and §11.

- `platforms/{platform_key}/config/smtp/`: GET, PUT, PATCH and DELETE (reset to
  the project's default server) of the platform's own SMTP server. The
  password is write-only and stored encrypted.
- `platforms/{platform_key}/config/test-smtp/`: a live test of credentials
  before saving them, throttled per platform.

Both need a platform admin, plus `Ibl.Notifications/SMTP/action` when the
platform enables RBAC.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from notifications import selectors, smtp
from notifications.api.errors import ApiError
from notifications.api.ibl_access import SMTP_ACTION, validated
from notifications.api.ibl_serializers import (
    SMTPSettingsOutSerializer,
    SMTPSettingsSerializer,
    SMTPTestSerializer,
    smtp_settings_payload,
)
from notifications.api.permissions import requires
from notifications.permissions import PLATFORM_ADMIN

TAG = "SMTP configuration"

DETAIL = inline_serializer("IBLSMTPDetail", {"detail": serializers.CharField()})
TEST_RESULT = inline_serializer(
    "SMTPTestResult",
    {"success": serializers.BooleanField(), "status": serializers.CharField(), "message": serializers.CharField()},
)
RESET = inline_serializer("SMTPReset", {"message": serializers.CharField(), "deleted": serializers.BooleanField()})
ACCESS = {
    403: OpenApiResponse(DETAIL, description="Not an admin of this platform, or lacks the RBAC grant"),
    404: OpenApiResponse(DETAIL, description="Unknown platform, or one the caller does not belong to"),
}


class PlatformSMTPAdmin(requires(PLATFORM_ADMIN, rbac=SMTP_ACTION)):
    """Runs before throttling, so only the platform's admins use up its test budget."""

    def has_permission(self, request, view):
        allowed = super().has_permission(request, view)
        view.platform = getattr(request, "platform", None)
        return allowed


class SMTPTestThrottle(SimpleRateThrottle):
    """A budget per platform, whoever of its admins spends it."""

    scope = "smtp_test"

    def get_rate(self):
        return settings.SMTP_TEST_RATE

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": view.kwargs["platform_key"]}


def _test_failed(message: str, status: int, extra: dict | None = None):
    return ApiError(
        message, status=status, body={**(extra or {}), "success": False, "status": "error", "message": message}
    )


class SMTPTestView(APIView):
    permission_classes = [PlatformSMTPAdmin]
    throttle_classes = [SMTPTestThrottle]

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_config_test_smtp",
        summary="Test SMTP credentials",
        description=(
            "Opens a live SMTP connection with the given credentials and sends a test email to "
            "`test_email`. The host must resolve to public addresses only and the port must be an SMTP "
            "port (25, 465, 587, 2525), unless the operator allow-lists them (`SMTP_TEST_ALLOWED_HOSTS`, "
            "`SMTP_TEST_EXTRA_PORTS`); refusals are 400s and nothing is contacted. Closed, refused, "
            "silent and non-SMTP targets all answer the same connection-failure message. "
            "`smtp_username` may be blank for a server without authentication. Throttled per platform "
            "(429 with Retry-After)."
        ),
        request=SMTPTestSerializer,
        responses={
            200: TEST_RESULT,
            400: OpenApiResponse(TEST_RESULT, description="Invalid input or refused host/port; also `{field: [...]}`"),
            **ACCESS,
            429: OpenApiResponse(DETAIL, description="Too many tests for this platform; see Retry-After"),
            500: OpenApiResponse(TEST_RESULT, description="Authentication or connection failure"),
        },
    )
    def post(self, request, platform_key):
        data = validated(SMTPTestSerializer, request.data, extra={"success": False, "status": "error", "message": None})
        try:
            smtp.smtp_test_send(
                platform=self.platform,
                host=data["smtp_host"],
                port=data["smtp_port"],
                username=data["smtp_username"],
                password=data["smtp_password"],
                use_tls=data["use_tls"],
                use_ssl=data["use_ssl"],
                from_email=data["from_email"],
                to_email=data["test_email"],
            )
        except smtp.TargetRefused as exc:
            raise _test_failed(exc.message, 400, {exc.field: [exc.message]}) from None
        except smtp.SMTPTestFailed as exc:
            raise _test_failed(exc.message, 500) from None
        to = data["test_email"]
        return Response(
            {
                "success": True,
                "status": "success",
                "message": f"Test email sent successfully to {to}. Please check your inbox to confirm delivery.",
            }
        )


class SMTPSettingsView(APIView):
    permission_classes = [PlatformSMTPAdmin]

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_config_smtp_retrieve",
        summary="Get the platform's SMTP server",
        description="`is_inherited: true` means the platform's mail goes through the project's default server. "
        "The password is never returned; `has_password` says whether one is stored.",
        responses={200: SMTPSettingsOutSerializer, **ACCESS},
    )
    def get(self, request, platform_key):
        return Response(smtp_settings_payload(self.platform, selectors.smtp_settings_for(platform=self.platform)))

    def _save(self, request, *, partial: bool):
        current = selectors.smtp_settings_for(platform=self.platform)
        if partial and current is None:
            raise ApiError(
                "This platform has no SMTP settings to change; create them with PUT.",
                status=404,
                body={"detail": "This platform has no SMTP settings to change; create them with PUT."},
            )
        data = validated(SMTPSettingsSerializer, request.data, partial=partial, instance=current)
        merged = {
            "host": data.get("smtp_host", current.host if current else None),
            "port": data.get("smtp_port", current.port if current else 587),
            "username": data.get("smtp_username", current.username if current else ""),
            "password": data.get("smtp_password"),  # None keeps the stored one
            "use_tls": data.get("use_tls", current.use_tls if current else True),
            "use_ssl": data.get("use_ssl", current.use_ssl if current else False),
            "from_email": data.get("from_email", current.from_email if current else ""),
            "timeout": data.get("timeout", current.timeout if current else 10),
            "is_active": data.get("is_active", current.is_active if current else True),
        }
        try:
            obj = smtp.smtp_settings_save(platform=self.platform, **merged)
        except smtp.TargetRefused as exc:
            field = {"host": "smtp_host", "port": "smtp_port"}.get(exc.field, exc.field)
            raise ApiError(exc.message, status=400, body={field: [exc.message]}) from None
        return Response(smtp_settings_payload(self.platform, obj))

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_config_smtp_update",
        summary="Set the platform's SMTP server",
        description="Creates or replaces the settings. Omit `smtp_password` to keep the stored one. The same "
        "host and port rules as the SMTP test apply.",
        request=SMTPSettingsSerializer,
        responses={200: SMTPSettingsOutSerializer, 400: OpenApiResponse(description="`{field: [messages]}`"), **ACCESS},
    )
    def put(self, request, platform_key):
        return self._save(request, partial=False)

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_config_smtp_partial_update",
        summary="Change some of the platform's SMTP settings",
        request=SMTPSettingsSerializer,
        responses={200: SMTPSettingsOutSerializer, 400: OpenApiResponse(description="`{field: [messages]}`"), **ACCESS},
    )
    def patch(self, request, platform_key):
        return self._save(request, partial=True)

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_config_smtp_reset",
        summary="Reset to the project's default SMTP server",
        description="Deletes the platform's SMTP settings, password included.",
        responses={200: RESET, **ACCESS},
    )
    def delete(self, request, platform_key):
        if smtp.smtp_settings_reset(platform=self.platform):
            return Response(
                {"message": "SMTP settings reset. Platform will now use the default SMTP server.", "deleted": True}
            )
        return Response({"message": "Platform was already using the default SMTP server.", "deleted": False})

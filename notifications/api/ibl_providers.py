"""A platform's own SMS provider accounts, beside its SMTP settings.

- `platforms/{platform_key}/config/sms-providers/{provider}/` (`afromessage`,
  `africastalking`): GET, PUT, PATCH and DELETE (back to the project's
  account). The secret (AfroMessage token, Africa's Talking API key) is
  write-only and stored encrypted like the SMTP password.

Which providers SMS uses, and in what order, stays the project's
`NOTIFICATION_BACKENDS`; this only swaps the account a provider is called
with for the platform's messages. The same access as the SMTP settings: a
platform admin, plus `Ibl.Notifications/SMTP/action` when the platform
enables RBAC (both are the platform's delivery credentials).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.api.errors import ApiError
from notifications.api.ibl_access import validated
from notifications.api.ibl_smtp import ACCESS, PlatformSMTPAdmin
from notifications.models import PlatformProviderCredentials, SMSProvider
from notifications.provider_credentials import (
    provider_credentials_for,
    provider_credentials_reset,
    provider_credentials_save,
)

TAG = "SMS provider accounts"
RESET = inline_serializer(
    "ProviderCredentialsReset", {"message": serializers.CharField(), "deleted": serializers.BooleanField()}
)
NOT_FOUND = {
    404: OpenApiResponse(
        inline_serializer("IBLProviderDetail", {"detail": serializers.CharField()}),
        description="Unknown platform or provider, or a platform the caller does not belong to",
    )
}


class ProviderCredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(
        max_length=255, allow_blank=True, default="", help_text="Africa's Talking: the application's username"
    )
    secret = serializers.CharField(
        max_length=1024,
        allow_blank=True,
        trim_whitespace=False,
        write_only=True,
        required=False,
        style={"input_type": "password"},
        help_text="Write-only: the AfroMessage token or Africa's Talking API key. Omit to keep the stored one; "
        "an empty string removes it.",
    )
    sender_id = serializers.CharField(
        max_length=255,
        allow_blank=True,
        default="",
        help_text="AfroMessage: identifier id of a short code. Africa's Talking: short code or alphanumeric `from`",
    )
    sender_name = serializers.CharField(
        max_length=255, allow_blank=True, default="", help_text="AfroMessage: a verified sender name"
    )
    is_active = serializers.BooleanField(default=True, help_text="False: keep them but use the project's account")


class ProviderCredentialsOutSerializer(serializers.Serializer):
    platform = serializers.CharField()
    provider = serializers.ChoiceField(choices=SMSProvider.choices)
    is_inherited = serializers.BooleanField(help_text="True: the platform's SMS go out on the project's account")
    username = serializers.CharField(allow_null=True)
    has_secret = serializers.BooleanField(
        help_text="A secret is stored and readable (False after a SECRET_KEY change: enter it again)"
    )
    sender_id = serializers.CharField(allow_null=True)
    sender_name = serializers.CharField(allow_null=True)
    is_active = serializers.BooleanField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)


def payload(platform, provider: str, obj: PlatformProviderCredentials | None) -> dict:
    if obj is None:
        empty = dict.fromkeys(("username", "sender_id", "sender_name", "is_active", "updated_at"))
        return {"platform": platform.key, "provider": provider, "is_inherited": True, "has_secret": False, **empty}
    return ProviderCredentialsOutSerializer(
        {
            "platform": platform.key,
            "provider": provider,
            "is_inherited": not obj.is_active,
            "username": obj.username,
            "has_secret": bool(obj.secret),
            "sender_id": obj.sender_id,
            "sender_name": obj.sender_name,
            "is_active": obj.is_active,
            "updated_at": obj.updated_at,
        }
    ).data


class ProviderCredentialsView(APIView):
    permission_classes = [PlatformSMTPAdmin]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if kwargs.get("provider") not in SMSProvider.values:
            message = f"Unknown SMS provider; one of: {', '.join(SMSProvider.values)}"
            raise ApiError(message, status=404, body={"detail": message})

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_config_sms_provider_retrieve",
        summary="Get the platform's own account at an SMS provider",
        description="`is_inherited: true`: the platform's SMS go out on the project's account. The secret is never "
        "returned; `has_secret` says whether one is stored.",
        responses={200: ProviderCredentialsOutSerializer, **ACCESS, **NOT_FOUND},
    )
    def get(self, request, platform_key, provider):
        return Response(
            payload(self.platform, provider, provider_credentials_for(platform=self.platform, provider=provider))
        )

    def _save(self, request, provider: str, *, partial: bool):
        current = provider_credentials_for(platform=self.platform, provider=provider)
        if partial and current is None:
            message = "This platform has no credentials for this provider to change; create them with PUT."
            raise ApiError(message, status=404, body={"detail": message})
        data = validated(ProviderCredentialsSerializer, request.data, partial=partial)
        merged = {
            "username": data.get("username", current.username if current else ""),
            "secret": data.get("secret"),  # None keeps the stored one
            "sender_id": data.get("sender_id", current.sender_id if current else ""),
            "sender_name": data.get("sender_name", current.sender_name if current else ""),
            "is_active": data.get("is_active", current.is_active if current else True),
        }
        has_secret = bool(merged["secret"]) if merged["secret"] is not None else bool(current and current.secret)
        errors = {}
        if merged["is_active"] and not has_secret:
            errors["secret"] = ["Active credentials need a secret."]
        if merged["is_active"] and provider == SMSProvider.AFRICASTALKING and not merged["username"]:
            errors["username"] = ["Africa's Talking needs the application's username."]
        if errors:
            raise serializers.ValidationError(errors)
        obj = provider_credentials_save(platform=self.platform, provider=provider, **merged)
        return Response(payload(self.platform, provider, obj))

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_config_sms_provider_update",
        summary="Set the platform's own account at an SMS provider",
        description="Creates or replaces the credentials. Omit `secret` to keep the stored one.",
        request=ProviderCredentialsSerializer,
        responses={
            200: ProviderCredentialsOutSerializer,
            400: OpenApiResponse(description="`{field: [messages]}`"),
            **ACCESS,
            **NOT_FOUND,
        },
    )
    def put(self, request, platform_key, provider):
        return self._save(request, provider, partial=False)

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_config_sms_provider_partial_update",
        summary="Change some of the platform's credentials at an SMS provider",
        request=ProviderCredentialsSerializer,
        responses={
            200: ProviderCredentialsOutSerializer,
            400: OpenApiResponse(description="`{field: [messages]}`"),
            **ACCESS,
            **NOT_FOUND,
        },
    )
    def patch(self, request, platform_key, provider):
        return self._save(request, provider, partial=True)

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_config_sms_provider_reset",
        summary="Back to the project's account at an SMS provider",
        description="Deletes the platform's credentials for the provider, secret included.",
        responses={200: RESET, **ACCESS, **NOT_FOUND},
    )
    def delete(self, request, platform_key, provider):
        if provider_credentials_reset(platform=self.platform, provider=provider):
            return Response({"message": "Credentials deleted: SMS use the project's account.", "deleted": True})
        return Response({"message": "The platform already used the project's account.", "deleted": False})

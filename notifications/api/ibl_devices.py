"""Push device tokens of IBL §7.3: `orgs/{org}/users/{user_id}/register-fcm-token/`."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import devices
from notifications.api.errors import ApiError
from notifications.api.ibl_access import acting_on, validated
from notifications.api.ibl_serializers import FCMTokenDeleteSerializer, FCMTokenSerializer
from notifications.api.permissions import MemberOrPlatformAdmin

SUCCESS = inline_serializer(
    "IBLSuccessMessage", {"success": serializers.BooleanField(), "message": serializers.CharField()}
)
PUSH_DISABLED = "Push notifications are not enabled on this platform."
NOT_REGISTERED = "Registration ID does not exist"

RESPONSES = {
    400: OpenApiResponse(SUCCESS, description="Invalid input: also `{field: [messages]}`"),
    404: OpenApiResponse(
        SUCCESS,
        description="Unknown platform or user, push disabled on the platform, or (DELETE) a token "
        "the user has not registered on this platform",
    ),
}


def _push_target(request, org, user_id):
    platform, owner = acting_on(request, user_id)
    if not platform.push_enabled:
        raise ApiError(PUSH_DISABLED, status=404, body={"success": False, "message": PUSH_DISABLED})
    return platform, owner


class RegisterFCMTokenView(APIView):
    permission_classes = [MemberOrPlatformAdmin]

    @extend_schema(
        tags=["Push notifications"],
        operation_id="orgs_users_register_fcm_token",
        summary="Register an FCM device token",
        description="Users register their own devices; a platform admin may register for any member. "
        "A token that is already registered moves to this user (one row per token). A device "
        "registered on several platforms receives each platform's pushes. The message says "
        "`updated` only when this user had already registered the token on this platform; "
        "whether it was known to another account or platform is never shown.",
        request=FCMTokenSerializer,
        responses={200: SUCCESS, **RESPONSES},
    )
    def post(self, request, org, user_id):
        platform, owner = _push_target(request, org, user_id)
        data = validated(FCMTokenSerializer, request.data, extra={"success": False, "message": None})
        _, created = devices.push_device_register(
            user=owner,
            platform=platform,
            name=data["name"],
            registration_id=data["registration_id"],
            active=data["active"],
            cloud_message_type=data["cloud_message_type"],
            application_id=data["application_id"],
            device_type=data.get("type", ""),
        )
        message = "Token created successfully" if created else "Token updated successfully"
        return Response({"success": True, "message": message})

    @extend_schema(
        tags=["Push notifications"],
        operation_id="orgs_users_remove_fcm_token",
        summary="Remove an FCM device token",
        description="Removes the token from this platform; the device record goes when no platform is left.",
        request=FCMTokenDeleteSerializer,
        responses={200: SUCCESS, **RESPONSES},
    )
    def delete(self, request, org, user_id):
        platform, owner = _push_target(request, org, user_id)
        data = validated(FCMTokenDeleteSerializer, request.data, extra={"success": False, "message": None})
        try:
            devices.push_device_remove(user=owner, platform=platform, registration_id=data["registration_id"])
        except devices.DeviceNotFound:
            raise ApiError(NOT_REGISTERED, status=404, body={"success": False, "message": NOT_REGISTERED}) from None
        return Response({"success": True, "message": "Registration ID delete successfully"})

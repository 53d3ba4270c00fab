"""A platform's frequency caps, beside its SMTP and SMS provider settings.

- `platforms/{platform_key}/config/frequency-caps/`: GET, the platform's caps.
- `platforms/{platform_key}/config/frequency-caps/{channel}/` (`sms`,
  `push_notification`, `email`): GET, PUT (create or replace) and DELETE.

Platform admins only; another platform's caps are a 404 like the platform itself.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.api.errors import ApiError
from notifications.api.permissions import PlatformAdmin
from templates_app.api.common import DRF_ERROR, FIELD_ERRORS, StrictSerializer
from templates_app.models import CapAction, CapWindow, FrequencyCap
from templates_app.services import frequency_caps

TAG = ["frequency caps"]
MAX_LIMIT = 1_000_000
ACCESS = {
    403: OpenApiResponse(DRF_ERROR, description="Not an admin of this platform"),
    404: OpenApiResponse(
        DRF_ERROR,
        description="Unknown platform or channel, a platform the caller does not "
        "belong to, or (GET of one channel) no cap on that channel",
    ),
}
DELETED = inline_serializer(
    "FrequencyCapDeleted", {"message": serializers.CharField(), "deleted": serializers.BooleanField()}
)

CHANNEL = OpenApiParameter(
    "channel",
    location=OpenApiParameter.PATH,
    enum=[c for c, _ in FrequencyCap.CHANNELS],
    description="The capped channel (in-app is not capped)",
)


class FrequencyCapIn(StrictSerializer):
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_LIMIT, help_text="Most non-critical deliveries per recipient and window"
    )
    window = serializers.ChoiceField(
        choices=CapWindow.choices,
        default=CapWindow.DAY,
        help_text="hour, day (from midnight) or week (from Monday midnight), on the platform's clock (`time_zone`)",
    )
    over_limit = serializers.ChoiceField(
        choices=CapAction.choices,
        default=CapAction.DEFER,
        help_text="defer: to the next window with room (at most 30 windows ahead, then suppressed); "
        "suppress: written `suppressed`. Either way the delivery shows `rule: frequency_cap`.",
    )


class FrequencyCapOut(serializers.Serializer):
    channel = serializers.ChoiceField(choices=FrequencyCap.CHANNELS)
    limit = serializers.IntegerField()
    window = serializers.ChoiceField(choices=CapWindow.choices)
    over_limit = serializers.ChoiceField(choices=CapAction.choices)
    updated_at = serializers.DateTimeField()


class FrequencyCapsOut(serializers.Serializer):
    platform = serializers.CharField()
    time_zone = serializers.CharField(help_text="The clock day and week windows follow")
    caps = FrequencyCapOut(many=True)


def _channel(value: str) -> str:
    channels = [c for c, _ in FrequencyCap.CHANNELS]
    if value not in channels:
        message = f"Unknown channel; one of: {', '.join(channels)}"
        raise ApiError(message, status=404, body={"detail": message})
    return value


class FrequencyCapListView(APIView):
    permission_classes = [PlatformAdmin]

    @extend_schema(
        tags=TAG,
        operation_id="platforms_config_frequency_caps_list",
        summary="The platform's frequency caps",
        description="At most `limit` non-critical deliveries per recipient, channel and window. Critical "
        "notification types and critical alerts are never capped; in-app is not capped.",
        responses={200: FrequencyCapsOut, **ACCESS},
    )
    def get(self, request, platform_key):
        platform = request.platform
        caps = frequency_caps.frequency_caps_of(platform=platform)
        return Response(
            FrequencyCapsOut({"platform": platform.key, "time_zone": platform.time_zone, "caps": caps}).data
        )


class FrequencyCapDetailView(APIView):
    permission_classes = [PlatformAdmin]

    @extend_schema(
        tags=TAG,
        operation_id="platforms_config_frequency_cap_retrieve",
        parameters=[CHANNEL],
        summary="The platform's frequency cap on one channel",
        responses={200: FrequencyCapOut, **ACCESS},
    )
    def get(self, request, platform_key, channel):
        channel = _channel(channel)
        cap = next(
            (c for c in frequency_caps.frequency_caps_of(platform=request.platform) if c.channel == channel), None
        )
        if cap is None:
            raise ApiError("This platform has no cap on this channel.", status=404)
        return Response(FrequencyCapOut(cap).data)

    @extend_schema(
        tags=TAG,
        operation_id="platforms_config_frequency_cap_update",
        parameters=[CHANNEL],
        summary="Set the platform's frequency cap on one channel",
        description="Creates or replaces the cap. It applies to deliveries written from now on; what was "
        "already counted in the current window counts against the new limit.",
        request=FrequencyCapIn,
        responses={200: FrequencyCapOut, 400: FIELD_ERRORS, **ACCESS},
    )
    def put(self, request, platform_key, channel):
        channel = _channel(channel)
        ser = FrequencyCapIn(data=request.data)
        ser.is_valid(raise_exception=True)
        cap = frequency_caps.frequency_cap_save(platform=request.platform, channel=channel, **ser.validated_data)
        return Response(FrequencyCapOut(cap).data)

    @extend_schema(
        tags=TAG,
        operation_id="platforms_config_frequency_cap_delete",
        parameters=[CHANNEL],
        summary="Remove the platform's frequency cap on one channel",
        description="Deliveries the cap already deferred still go at their time.",
        responses={200: DELETED, **ACCESS},
    )
    def delete(self, request, platform_key, channel):
        channel = _channel(channel)
        if frequency_caps.frequency_cap_delete(platform=request.platform, channel=channel):
            return Response({"message": "Cap removed.", "deleted": True})
        return Response({"message": "There was no cap on this channel.", "deleted": False})

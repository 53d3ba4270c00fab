"""The automatic-notification events endpoint: a platform reports an event, the service notifies."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.api.errors import ApiError
from notifications.api.permissions import PlatformPermission
from notifications.permissions import PLATFORM_ADMIN
from templates_app.api import event_serializers as s
from templates_app.api.common import DRF_ERROR, FIELD_ERRORS, TAG_EVENTS, _validation
from templates_app.automation import events as event_services

EVENT_KEY = "Ibl.Notifications/Event/send"


class EventSender(PlatformPermission):
    """Members holding the event key (the platform's own systems); without RBAC, platform admins too."""

    def missing(self, request, held):
        if EVENT_KEY in held or (PLATFORM_ADMIN in held and not request.platform.rbac_enabled):
            return None
        return EVENT_KEY

    def message_for(self, missing):
        return f"Only platform admins or holders of {EVENT_KEY} can post events."


class EventView(APIView):
    permission_classes = [EventSender]

    @extend_schema(
        tags=TAG_EVENTS,
        summary="Report a platform event (automatic notification)",
        description="Checks that the type is enabled for the platform, which channels its template allows, "
        "which template applies (the platform's copy or the default) and who the recipients are; renders the "
        "message for each recipient and delivers it. A disabled type is accepted and reported as `skipped`. "
        "`recipients` take usernames, user ids, emails, or `{username|user_id|email, context}` objects; "
        "HUMAN_SUPPORT_NOTIFICATION adds the recipients its configuration names. Re-posting an `event_id` "
        "never delivers twice; re-posting it with a different payload is a 409.",
        request=s.EventIn,
        responses={200: s.EventOut, 400: FIELD_ERRORS, 403: DRF_ERROR, 404: DRF_ERROR, 409: DRF_ERROR},
    )
    def post(self, request, org):
        platform = request.platform
        ser = s.EventIn(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        try:
            result = event_services.event_notify(
                platform=platform,
                notification_type=data["type"],
                recipients=data["recipients"],
                context=data["context"],
                channels=data.get("channels"),
                event_id=data.get("event_id"),
                user=request.user,
            )
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        except event_services.EventConflict:
            raise ApiError(
                "This event_id was already used with a different payload.", status=409, code="conflict"
            ) from None
        return Response(result)

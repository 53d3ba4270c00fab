"""The `/alerts` surface: validate, call one service, serialise in `{"data": ...}`."""

from __future__ import annotations

import math

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts import selectors, services
from alerts.api.serializers import (
    AlertCreateSerializer,
    AlertDeletedEnvelopeSerializer,
    AlertEnvelopeSerializer,
    AlertErrorSerializer,
    AlertListEnvelopeSerializer,
    AlertListQuerySerializer,
    AlertReadAllEnvelopeSerializer,
    AlertSerializer,
    AlertWriteSerializer,
)
from alerts.models import Alert
from notifications.api.errors import ApiError
from notifications.api.permissions import PlatformMember
from notifications.permissions import request_permissions
from notifications.tenancy import is_member, platform_for_request

TAGS = ["alerts"]
CREATE_FOR_USER = "alerts.create_for_user"


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(AlertErrorSerializer, description=description)


UNAUTHORIZED = _error("Unauthorized - Authentication required")
NOT_FOUND = _error("Alert not found")
INVALID = _error("Invalid body or query parameters; `fields` names each problem")


def _alert_or_404(request, alert_id: int) -> Alert:
    alert = selectors.alert_get(platform=platform_for_request(request), user=request.user, alert_id=alert_id)
    if alert is None:
        raise ApiError("Alert not found", status=404)
    return alert


def _owner_for(request, platform, user_id: int | None):
    """Whose alert a POST creates: the caller's own, or (service accounts) the named user's."""
    if user_id is None or user_id == request.user.pk:
        return request.user
    if not (request.user.is_service_account and CREATE_FOR_USER in request_permissions(request, platform)):
        raise ApiError(
            "Not allowed to create alerts for other users",
            status=403,
            error=f"Only service accounts holding {CREATE_FOR_USER} may pass userId",
        )
    owner = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if owner is None or not is_member(owner, platform):
        raise ApiError("User not found", status=404, error=f"No user {user_id} on this platform")
    return owner


class AlertListCreateView(APIView):
    permission_classes = [PlatformMember]

    @extend_schema(
        tags=TAGS,
        operation_id="alerts_list",
        summary="Get alerts",
        description=(
            "The caller's alerts, newest first, `limit` per page. Filters combine; `from`/`to` bound "
            "`scheduledAt` so `?isEvent=true&from=<now>&to=<now+7d>&ordering=scheduledAt` is the "
            "upcoming-events view. Archived alerts (read and past the retention period) are listed "
            "only with `archived=true`."
        ),
        parameters=[AlertListQuerySerializer],
        responses={200: AlertListEnvelopeSerializer, 400: INVALID, 401: UNAUTHORIZED},
    )
    def get(self, request):
        query = AlertListQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = query.validated_data
        platform = platform_for_request(request)
        alerts = selectors.alert_list(
            platform=platform,
            user=request.user,
            is_read=params.get("isRead"),
            types=params.get("type") or (),
            is_event=params.get("isEvent"),
            scheduled_from=params.get("from"),
            scheduled_to=params.get("to"),
            archived=params["archived"],
            ordering=params["ordering"],
        )
        page, limit = params["page"], params["limit"]
        total = alerts.count()
        rows = alerts[(page - 1) * limit : page * limit]
        meta = {
            "page": page,
            "limit": limit,
            "total": total,
            "totalPages": math.ceil(total / limit),
            "unreadCount": selectors.alert_unread_count(platform=platform, user=request.user),
        }
        return Response({"data": AlertSerializer(rows, many=True).data, "meta": meta})

    @extend_schema(
        tags=TAGS,
        operation_id="alerts_create",
        summary="Create alert",
        description=(
            "Creates an alert or, with `isEvent: true`, a calendar event for the caller. Its notification "
            "goes out at `notifyAt` (an event without one: at `scheduledAt`; an unread alert without "
            "either: at once). Service accounts holding `alerts.create_for_user` may pass `userId` to "
            "create the alert for a member of their platform."
        ),
        request=AlertCreateSerializer,
        responses={
            201: AlertEnvelopeSerializer,
            400: INVALID,
            401: UNAUTHORIZED,
            403: _error("userId given by a caller who may not create alerts for others"),
            404: _error("userId names no member of the caller's platform"),
        },
        examples=[
            OpenApiExample(
                "Simple alert",
                request_only=True,
                value={
                    "title": "Low Stock Alert",
                    "message": 'Item "Laptop Dell XPS 15" is running low on stock',
                    "type": "warning",
                },
            ),
            OpenApiExample(
                "Scheduled event",
                request_only=True,
                value={
                    "title": "Quarterly Inventory Audit",
                    "message": "Complete inventory count for all warehouses",
                    "type": "info",
                    "isEvent": True,
                    "scheduledAt": "2026-06-15T09:00:00Z",
                    "notifyAt": "2026-06-14T09:00:00Z",
                },
            ),
        ],
    )
    def post(self, request):
        body = AlertCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        platform = platform_for_request(request)
        owner = _owner_for(request, platform, data.pop("user_id", None))
        alert = services.alert_create(
            platform=platform,
            user=owner,
            created_by=request.user if owner != request.user else None,
            **data,
        )
        return Response({"data": AlertSerializer(alert).data}, status=status.HTTP_201_CREATED)


class AlertDetailView(APIView):
    permission_classes = [PlatformMember]

    @extend_schema(
        tags=TAGS,
        operation_id="alerts_retrieve",
        summary="Get one alert",
        responses={200: AlertEnvelopeSerializer, 401: UNAUTHORIZED, 404: NOT_FOUND},
    )
    def get(self, request, id: int):
        return Response({"data": AlertSerializer(_alert_or_404(request, id)).data})

    @extend_schema(
        tags=TAGS,
        operation_id="alerts_update",
        summary="Update alert",
        description=(
            "Accepts the fields of Create Alert, all optional. Moving `notifyAt` (or an event's "
            "`scheduledAt` when it has no `notifyAt`) into the future schedules a new notification, "
            "even if the old one was already sent; clearing it cancels one not yet sent."
        ),
        request=AlertWriteSerializer,
        responses={200: AlertEnvelopeSerializer, 400: INVALID, 401: UNAUTHORIZED, 404: NOT_FOUND},
    )
    def put(self, request, id: int):
        alert = _alert_or_404(request, id)
        body = AlertWriteSerializer(alert, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        alert = services.alert_update(alert=alert, data=dict(body.validated_data))
        return Response({"data": AlertSerializer(alert).data})

    @extend_schema(
        tags=TAGS,
        operation_id="alerts_partial_update",
        summary="Update alert (PATCH)",
        description="The same as PUT: every field is optional.",
        request=AlertWriteSerializer,
        responses={200: AlertEnvelopeSerializer, 400: INVALID, 401: UNAUTHORIZED, 404: NOT_FOUND},
    )
    def patch(self, request, id: int):
        return self.put(request, id)

    @extend_schema(
        tags=TAGS,
        operation_id="alerts_delete",
        summary="Delete alert",
        description="Removes the alert from the API (kept for audit) and cancels its pending notification.",
        request=None,
        responses={
            200: OpenApiResponse(AlertDeletedEnvelopeSerializer, description="Alert deleted successfully"),
            401: UNAUTHORIZED,
            404: NOT_FOUND,
        },
    )
    def delete(self, request, id: int):
        alert = _alert_or_404(request, id)
        services.alert_delete(alert=alert)
        return Response({"data": {"id": alert.pk, "deleted": True}, "message": "Alert deleted successfully"})


class AlertReadView(APIView):
    permission_classes = [PlatformMember]

    @extend_schema(
        tags=TAGS,
        operation_id="alerts_mark_read",
        summary="Mark alert as read",
        description="Marks the alert read and records when (a second call keeps the first time).",
        request=None,
        responses={200: AlertEnvelopeSerializer, 401: UNAUTHORIZED, 404: NOT_FOUND},
    )
    def patch(self, request, id: int):
        alert = services.alert_mark_read(alert=_alert_or_404(request, id))
        return Response({"data": AlertSerializer(alert).data})


class AlertReadAllView(APIView):
    permission_classes = [PlatformMember]

    @extend_schema(
        tags=TAGS,
        operation_id="alerts_mark_all_read",
        summary="Mark all alerts as read",
        description="Marks every unread alert of the caller read; answers how many changed.",
        request=None,
        responses={200: AlertReadAllEnvelopeSerializer, 401: UNAUTHORIZED},
    )
    def patch(self, request):
        updated = services.alerts_mark_all_read(platform=platform_for_request(request), user=request.user)
        return Response({"data": {"updated": updated}})

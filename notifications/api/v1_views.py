"""The `/api/v1/` inbox: polling fallback of the WebSocket (bulk document §11)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from notifications import selectors
from notifications.api.envelope import V1_ERROR, envelope_schema, ok
from notifications.api.params import int_query_param
from notifications.api.permissions import requires
from notifications.api.v1_serializers import PAYLOAD_FIELDS, V1NotificationSerializer
from notifications.models import InboxStatus
from notifications.tenancy import platform_for_request

MAX_LIMIT = 100


class InboxListView(APIView):
    permission_classes = [requires("notifications.list_mine")]

    @extend_schema(
        tags=["v1 inbox"],
        parameters=[
            OpenApiParameter("limit", int, description="Page size (default 20, max 100)"),
            OpenApiParameter("offset", int, description="Rows to skip (default 0, at most 100,000,000)"),
        ],
        responses={
            200: envelope_schema(
                "V1InboxPage",
                inline_serializer(
                    "V1InboxData",
                    {
                        "notifications": V1NotificationSerializer(many=True),
                        "total_count": serializers.IntegerField(),
                        "limit": serializers.IntegerField(),
                        "offset": serializers.IntegerField(),
                    },
                ),
            ),
            400: V1_ERROR,
            401: V1_ERROR,
            403: V1_ERROR,
        },
    )
    def get(self, request):
        limit = int_query_param(request, "limit", 20, minimum=1, maximum=MAX_LIMIT)
        offset = int_query_param(request, "offset", 0, minimum=0, maximum=settings.API_MAX_OFFSET)
        platform = platform_for_request(request)
        rows = list(
            selectors.inbox_visible_for(
                user=request.user, platform=platform, limit=limit, offset=offset, fields=PAYLOAD_FIELDS
            )
        )
        counts = selectors.inbox_counts(user=request.user, platform=platform)
        data = {
            "notifications": V1NotificationSerializer(rows, many=True).data,
            # From the counter, not COUNT(*): a user may hold hundreds of thousands.
            "total_count": counts[InboxStatus.UNREAD] + counts[InboxStatus.READ],
            "limit": limit,
            "offset": offset,
        }
        return ok("Notifications retrieved", data)


class UnreadCountView(APIView):
    permission_classes = [requires("notifications.count_unread")]

    @extend_schema(
        tags=["v1 inbox"],
        responses={
            200: envelope_schema(
                "V1UnreadCount", inline_serializer("V1UnreadData", {"unread": serializers.IntegerField()})
            ),
            401: V1_ERROR,
            403: V1_ERROR,
        },
    )
    def get(self, request):
        platform = platform_for_request(request)
        return ok(
            "Unread count retrieved", {"unread": selectors.inbox_unread_count(user=request.user, platform=platform)}
        )

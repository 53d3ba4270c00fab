"""A platform's suppression list (`platforms/{platform_key}/suppressions/`), in the IBL surface's style.

Platform admins list the addresses the platform no longer sends to (hard
bounces, complaints, unsubscribes, invalid numbers), see why and since when,
and lift an entry (DELETE) so the address gets that channel's sends again.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import suppressions
from notifications.api.ibl_access import validated
from notifications.api.permissions import PlatformAdmin
from notifications.api.schema import paginated
from notifications.channels import Channel
from notifications.models import Suppression, SuppressionReason

TAG = "Suppression list"
DETAIL = inline_serializer("IBLSuppressionDetail", {"detail": serializers.CharField()})
ACCESS = {
    403: OpenApiResponse(DETAIL, description="Not an admin of this platform"),
    404: OpenApiResponse(DETAIL, description="Unknown platform or entry, or one the caller does not administer"),
}


class SuppressionSerializer(serializers.ModelSerializer):
    notification_id = serializers.UUIDField(allow_null=True, read_only=True)

    class Meta:
        model = Suppression
        fields = [
            "id",
            "channel",
            "address",
            "notification_type",
            "reason",
            "source",
            "detail",
            "notification_id",
            "created_at",
        ]
        read_only_fields = fields


class SuppressionQuerySerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=[Channel.EMAIL, Channel.SMS], required=False)
    reason = serializers.ChoiceField(choices=SuppressionReason.choices, required=False)
    address = serializers.CharField(required=False, max_length=320, allow_blank=True)


class SuppressionPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class SuppressionListView(APIView):
    permission_classes = [PlatformAdmin]

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_suppressions_list",
        summary="List the platform's suppression list",
        description=(
            "Addresses this platform no longer sends to, newest first. Entries come from provider receipts "
            "(a hard bounce, a spam complaint, an unsubscribe at the provider, an SMS invalid-number report) "
            "and from the one-click unsubscribe link (`notification_type` names the link's type; blank means "
            "every type). Sends to a listed address are written `suppressed` with rule `suppression_list` "
            "and not sent."
        ),
        parameters=[
            OpenApiParameter("channel", str, enum=[Channel.EMAIL, Channel.SMS], description="Only this channel"),
            OpenApiParameter("reason", str, enum=SuppressionReason.values, description="Only this reason"),
            OpenApiParameter("address", str, description="Address contains (case-insensitive)"),
            OpenApiParameter("page", int, description="Page number (default 1)"),
            OpenApiParameter("page_size", int, description="Results per page (default 50, at most 500)"),
        ],
        responses={200: paginated("PaginatedSuppressionList", SuppressionSerializer(many=True)), **ACCESS},
    )
    def get(self, request, platform_key):
        q = validated(SuppressionQuerySerializer, request.query_params)
        qs = suppressions.suppressions_for(
            platform=request.platform,
            channel=q.get("channel", ""),
            reason=q.get("reason", ""),
            address=q.get("address", ""),
        )
        paginator = SuppressionPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(SuppressionSerializer(page, many=True).data)


class SuppressionDetailView(APIView):
    permission_classes = [PlatformAdmin]

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_suppressions_retrieve",
        summary="Get one suppression-list entry",
        responses={200: SuppressionSerializer, **ACCESS},
    )
    def get(self, request, platform_key, suppression_id):
        entry = suppressions.suppression_get(platform=request.platform, suppression_id=suppression_id)
        return Response(SuppressionSerializer(entry).data)

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_suppressions_destroy",
        summary="Lift a suppression-list entry",
        description="The address gets this channel's sends again (for an unsubscribe entry: that type's).",
        responses={204: None, **ACCESS},
    )
    def delete(self, request, platform_key, suppression_id):
        suppressions.suppression_lift(platform=request.platform, suppression_id=suppression_id)
        return Response(status=204)

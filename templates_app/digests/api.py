"""The digest buckets endpoint: what is being collected, how much, and when it goes out."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.views import APIView

from notifications.api.schema import paginated
from templates_app.api.common import DRF_ERROR, FIELD_ERRORS, TAG_EVENTS
from templates_app.api.template_views import TemplateReader
from templates_app.models import DigestBucket, DigestStatus


class DigestBucketOut(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField()
    username = serializers.CharField(allow_null=True, help_text="The recipient; null for a bare address.")
    address = serializers.CharField(help_text="The recipient's address when it has no account.")
    digest_key = serializers.CharField(help_text="<type>|<recipient>[|<context name>=<value>]")
    channels = serializers.ListField(child=serializers.CharField())
    mode = serializers.ChoiceField(choices=["leading", "trailing"])
    status = serializers.ChoiceField(choices=DigestStatus.values)
    count = serializers.IntegerField(help_text="Events the digest carries so far.")
    window_start = serializers.DateTimeField()
    goes_out_at = serializers.DateTimeField(help_text="The window's end: when the sweep sends the digest.")
    sent_at = serializers.DateTimeField(allow_null=True)
    source = serializers.CharField(help_text="The deliveries' source once sent: `digest:<id>`.")


class BucketsIn(serializers.Serializer):
    status = serializers.ChoiceField(choices=DigestStatus.values, required=False, default=DigestStatus.OPEN)
    type = serializers.CharField(max_length=100, required=False)
    username = serializers.CharField(max_length=150, required=False)


class BucketPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def _iso(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def bucket_out(bucket: DigestBucket) -> dict:
    return {
        "id": str(bucket.pk),
        "type": bucket.notification_type,
        "username": bucket.user.username if bucket.user_id else None,
        "address": bucket.address,
        "digest_key": bucket.digest_key,
        "channels": list(bucket.channels),
        "mode": bucket.mode,
        "status": bucket.status,
        "count": bucket.count,
        "window_start": _iso(bucket.window_start),
        "goes_out_at": _iso(bucket.window_end),
        "sent_at": _iso(bucket.sent_at),
        "source": bucket.source,
    }


class DigestBucketListView(APIView):
    permission_classes = [TemplateReader]

    @extend_schema(
        tags=TAG_EVENTS,
        summary="List digest buckets",
        description="The platform's digests being collected (`status=open`, the default) or already handled "
        "(`sending`, `sent`, `empty`, `failed`): per recipient and window, how many events each carries and "
        "when it goes out, soonest first.",
        parameters=[
            OpenApiParameter("status", enum=DigestStatus.values, required=False),
            OpenApiParameter("type", str, required=False, description="Only this notification type."),
            OpenApiParameter("username", str, required=False, description="Only this recipient."),
        ],
        operation_id="api_notification_v1_orgs_digests_list",
        responses={
            200: paginated("PaginatedDigestBucketList", DigestBucketOut(many=True)),
            400: FIELD_ERRORS,
            403: DRF_ERROR,
            404: DRF_ERROR,
        },
    )
    def get(self, request, org):
        query = BucketsIn(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        qs = DigestBucket.objects.filter(platform=request.platform, status=filters["status"]).select_related("user")
        if filters.get("type"):
            qs = qs.filter(notification_type=filters["type"])
        if filters.get("username"):
            qs = qs.filter(user__username=filters["username"])
        paginator = BucketPagination()
        page = paginator.paginate_queryset(qs.order_by("window_end", "id"), request, view=self)
        return paginator.get_paginated_response([bucket_out(b) for b in page])

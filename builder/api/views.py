"""`/api/notification/v1/orgs/{platform_key}/notification-builder/` (IBL §7.5).

For platform admins (every source, every build of the platform) and
department admins (department sources of their own departments, their own
builds). Views validate, call one service or selector, and shape the answer.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from builder import selectors, services, templating
from builder.api.serializers import (
    BuildDetailSerializer,
    BuildSerializer,
    PreviewSerializer,
    RecipientSerializer,
    SendSerializer,
    SourceInputSerializer,
    TemplateDataSerializer,
    ValidateSourceSerializer,
    build_payload,
    recipient_payload,
    request_payload,
)
from builder.errors import BuildError
from builder.models import Build, BuildStatus
from builder.sources import CSV, DEPARTMENT, SOURCE_TYPES, source_parse
from notifications.api.errors import ApiError
from notifications.api.parsers import JSONParser
from notifications.api.permissions import PlatformPermission
from notifications.api.schema import paginated
from notifications.channels import Channel
from notifications.permissions import PLATFORM_ADMIN
from notifications.services import send_counts

RBAC_KEY = "Ibl.Notifications/NotificationBuilder/action"
TAGS = ["ibl notification builder"]

DETAIL = inline_serializer("BuilderErrorDetail", {"detail": serializers.CharField()})
ERRORS = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description='Invalid input: `{"detail"}` or `{field: [messages]}`'),
    401: DETAIL,
    403: OpenApiResponse(DETAIL, description="Not a platform or department admin, or a source out of reach"),
    404: OpenApiResponse(DETAIL, description="Unknown platform, or one you do not belong to"),
}


class CanUseBuilder(PlatformPermission):
    """Platform admins and department admins of the platform the path names.

    A platform the caller does not belong to is a 404 (tenancy); with RBAC on,
    the caller also needs the builder's grant.
    """

    rbac = RBAC_KEY
    admin_message = "Only platform admins and department admins can send direct notifications."

    def missing(self, request, held):
        access = selectors.access_for(user=request.user, platform=request.platform, held=held)
        if not access.allowed:
            return PLATFORM_ADMIN
        request.builder_access = access
        return super().missing(request, held)


class BuilderView(APIView):
    permission_classes = [CanUseBuilder]

    @property
    def access(self) -> selectors.Access:
        return self.request.builder_access

    def get_build(self, build_id) -> Build:
        build = selectors.builds_for(access=self.access).filter(pk=build_id).first()
        if build is None:
            raise ApiError("Not found.", status=404)
        return build


class ContextView(BuilderView):
    @extend_schema(
        tags=TAGS,
        summary="Templates, channels and recipient source types available on the platform",
        responses={
            200: inline_serializer(
                "BuilderContext",
                {
                    "status": serializers.CharField(),
                    "data": inline_serializer(
                        "BuilderContextData",
                        {
                            "templates": inline_serializer(
                                "BuilderTemplate",
                                {
                                    "id": serializers.CharField(),
                                    "name": serializers.CharField(),
                                    "type": serializers.CharField(),
                                },
                                many=True,
                            ),
                            "channels": inline_serializer(
                                "BuilderChannel",
                                {"id": serializers.IntegerField(), "name": serializers.CharField()},
                                many=True,
                            ),
                            "sources": serializers.ListField(child=serializers.CharField()),
                        },
                    ),
                },
            ),
            **ERRORS,
        },
    )
    def get(self, request, platform_key):
        platform = self.access.platform
        channels = [
            {"id": channel_id, "name": name}
            for channel_id, name in templating.channel_choices()
            if name != Channel.PUSH or platform.push_enabled
        ]
        # A department admin can only use department sources.
        sources = list(SOURCE_TYPES) if self.access.is_platform_admin else [DEPARTMENT]
        data = {"templates": templating.template_choices(platform=platform), "channels": channels, "sources": sources}
        return Response({"status": "success", "data": data})


class ValidateSourceView(BuilderView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        tags=TAGS,
        summary="Validate one recipient source",
        description=(
            "JSON `{type, data}`; a csv source is multipart form data with the file in `file_0` "
            "(a header row with an `email` column). `invalid_entries` lists up to 1000 entries, "
            "`invalid_count` counts them all."
        ),
        request={"application/json": ValidateSourceSerializer, "multipart/form-data": ValidateSourceSerializer},
        responses={
            200: inline_serializer(
                "BuilderValidateSource",
                {
                    "status": serializers.CharField(),
                    "valid_count": serializers.IntegerField(),
                    "invalid_entries": serializers.ListField(child=serializers.CharField()),
                    "invalid_count": serializers.IntegerField(),
                    "sample_recipients": inline_serializer(
                        "BuilderSampleRecipient",
                        {"username": serializers.CharField(allow_null=True), "email": serializers.CharField()},
                        many=True,
                    ),
                },
            ),
            **ERRORS,
        },
        examples=[
            OpenApiExample(
                "Emails",
                value={"type": "email", "data": "jane@example.com,john@example.com,invalid-address"},
                request_only=True,
            )
        ],
    )
    def post(self, request, platform_key):
        payload = request_payload(request.data)
        source = source_parse(payload, files=request.FILES, index=0)
        result = services.source_validate(access=self.access, source=source)
        return Response({"status": "success", **result})


class PreviewView(BuilderView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        tags=TAGS,
        summary="Combine sources, de-duplicate recipients, create a build",
        description=(
            "Exactly one of `template_id` and `template_data`. With csv sources, send multipart form data: "
            "`sources`, `channels`, `template_data` and `context` as JSON text, the n-th csv source's file in "
            "`file_<n>` (or in the field its `data` names). Recipients without an account (an address only) "
            "are reached by email alone."
        ),
        request={
            "application/json": inline_serializer(
                "BuilderPreviewRequest",
                {
                    "template_id": serializers.CharField(required=False),
                    "template_data": TemplateDataSerializer(required=False),
                    "channels": serializers.ListField(child=serializers.IntegerField()),
                    "sources": SourceInputSerializer(many=True),
                    "context": serializers.DictField(required=False),
                    "process_on": serializers.DateTimeField(required=False),
                },
            ),
            "multipart/form-data": OpenApiTypes.OBJECT,
        },
        responses={
            200: inline_serializer(
                "BuilderPreview",
                {
                    "status": serializers.CharField(),
                    "build_id": serializers.UUIDField(),
                    "count": serializers.IntegerField(),
                    "warning": serializers.CharField(allow_null=True),
                    "recipients": RecipientSerializer(many=True),
                },
            ),
            **ERRORS,
        },
        examples=[
            OpenApiExample(
                "Custom content",
                value={
                    "template_data": {
                        "message_title": "Platform Maintenance Notice",
                        "message_body": "Hi {{ username }}, scheduled maintenance is planned for April 20.",
                    },
                    "channels": [1, 3],
                    "sources": [
                        {"type": "usergroup", "data": "12"},
                        {"type": "email", "data": "external-user@example.com"},
                    ],
                    "context": {},
                },
                request_only=True,
            )
        ],
    )
    def post(self, request, platform_key):
        payload = request_payload(request.data)
        serializer = PreviewSerializer(data=payload, platform=self.access.platform)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        sources, csv_seen = [], 0
        for index, raw in enumerate(data["sources"]):
            source = source_parse(raw, files=request.FILES, index=index, csv_ordinal=csv_seen)
            csv_seen += source.type == CSV
            sources.append(source)
        template_data = data.get("template_data")
        build = services.build_preview(
            access=self.access,
            channels=data["channels"],
            sources=sources,
            template_id=data.get("template_id") or "",
            template_data=dict(template_data) if template_data is not None else None,
            context=data.get("context") or {},
            process_on=data.get("process_on"),
        )
        first = selectors.recipients_for(build=build)[: services.PREVIEW_SIZE]
        return Response(
            {
                "status": "success",
                "build_id": str(build.pk),
                "count": build.recipient_count,
                "warning": build.warning or None,
                "recipients": [recipient_payload(row, build) for row in first],
            }
        )


class RecipientPagination(PageNumberPagination):
    page_size = 10
    page_size_query_param = "page_size"
    max_page_size = 500


class RecipientsView(BuilderView):
    @extend_schema(
        tags=TAGS,
        summary="Browse a build's recipients",
        parameters=[
            OpenApiParameter("search", str, description="Username or email contains (case-insensitive)"),
            OpenApiParameter("page", int, description="Page number (default 1)"),
            OpenApiParameter("page_size", int, description="Results per page (default 10, at most 500)"),
        ],
        operation_id="api_notification_v1_orgs_notification_builder_recipients_list",
        responses={200: paginated("PaginatedBuildRecipientList", RecipientSerializer(many=True)), **ERRORS},
    )
    def get(self, request, platform_key, build_id):
        build = self.get_build(build_id)
        queryset = selectors.recipients_for(build=build, search=request.query_params.get("search", ""))
        paginator = RecipientPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([recipient_payload(row, build) for row in page])


class SendView(BuilderView):
    @extend_schema(
        tags=TAGS,
        summary="Send a build (or queue it for its process_on)",
        description=(
            "`message` is `Notifications sent` (handed to the delivery workers; follow progress at "
            "`GET {build_id}/`), `Notifications queued` (process_on is in the future) or `Similar notifications "
            "found` (an identical build went out in the last 24 hours; nothing is sent unless `force` is true, "
            "which is recorded on the build). A build is sent at most once: sending it again is a 409."
        ),
        request=SendSerializer,
        responses={
            200: inline_serializer(
                "BuilderSend",
                {
                    "status": serializers.CharField(),
                    "notifications_sent": serializers.IntegerField(),
                    "build_id": serializers.UUIDField(),
                    "message": serializers.ChoiceField(
                        choices=[services.SENT_MESSAGE, services.QUEUED_MESSAGE, services.SIMILAR_MESSAGE]
                    ),
                    "build_status": serializers.CharField(),
                    "process_on": serializers.DateTimeField(required=False),
                    "warning": serializers.CharField(required=False),
                    "similar_build_id": serializers.UUIDField(required=False),
                },
            ),
            409: OpenApiResponse(DETAIL, description="The build was already sent, queued or cancelled"),
            **ERRORS,
        },
    )
    def post(self, request, platform_key):
        serializer = SendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        build = self.get_build(serializer.validated_data["build_id"])
        outcome = services.build_send(build=build, user=request.user, force=serializer.validated_data["force"])
        body = {
            "status": "success",
            "notifications_sent": outcome.notifications_sent,
            "build_id": str(build.pk),
            "message": outcome.message,
            "build_status": outcome.build.status,
        }
        if outcome.build.status == BuildStatus.QUEUED:
            body["process_on"] = outcome.build.process_on
        if outcome.similar is not None:
            body["warning"] = services.similar_warning(outcome.similar)
            body["similar_build_id"] = str(outcome.similar.pk)
        return Response(body)


class BuildDetailView(BuilderView):
    @extend_schema(
        tags=TAGS,
        summary="A build with its progress",
        description="`progress` counts recipients per status; `deliveries` counts deliveries per channel.",
        responses={200: BuildDetailSerializer, **ERRORS},
    )
    def get(self, request, platform_key, build_id):
        build = self.get_build(build_id)
        progress = selectors.build_progress(build=build)
        deliveries = send_counts(source=build.source).per_channel
        return Response(build_payload(build, progress=progress, deliveries=deliveries))


class BuildListPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class BuildListView(BuilderView):
    @extend_schema(
        tags=TAGS,
        summary="Builds of the platform (a department admin sees their own)",
        parameters=[
            OpenApiParameter("status", str, enum=list(BuildStatus.values), description="Only builds in this status"),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int, description="Default 20, at most 100"),
        ],
        operation_id="api_notification_v1_orgs_notification_builder_list",
        responses={200: paginated("PaginatedBuildList", BuildSerializer(many=True)), **ERRORS},
    )
    def get(self, request, platform_key):
        queryset = selectors.builds_for(access=self.access).order_by("-created_at")
        status = request.query_params.get("status")
        if status:
            if status not in BuildStatus.values:
                raise BuildError(f"Unknown status {status!r}; expected one of {', '.join(BuildStatus.values)}.")
            queryset = queryset.filter(status=status)
        paginator = BuildListPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([build_payload(build) for build in page])


class CancelView(BuilderView):
    @extend_schema(
        tags=TAGS,
        summary="Cancel a build before it is sent (a queued one until its process_on)",
        request=None,
        responses={
            200: inline_serializer(
                "BuilderCancel",
                {
                    "status": serializers.CharField(),
                    "build_id": serializers.UUIDField(),
                    "message": serializers.CharField(),
                },
            ),
            409: OpenApiResponse(DETAIL, description="Already sending, sent, or past its process_on"),
            **ERRORS,
        },
    )
    def post(self, request, platform_key, build_id):
        build = services.build_cancel(build=self.get_build(build_id), user=request.user)
        return Response({"status": "success", "build_id": str(build.pk), "message": "Build cancelled"})

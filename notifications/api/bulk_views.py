"""Bulk and scheduled sends of the `/api/v1/` surface (bulk document §6-§10).

Views parse with `notifications.bulk_scheduled.inputs`, call one service and answer in
the document's envelope; every queryset starts from the caller's platform, so
another tenant's job is a 404.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.api.bulk_serializers import (
    BulkEmailRequestSerializer,
    BulkInAppRequestSerializer,
    BulkPushRequestSerializer,
    BulkSmsRequestSerializer,
    CancelResultSerializer,
    DeliveryPageSerializer,
    DeliverySerializer,
    ImmediateResultSerializer,
    PushResultSerializer,
    ScheduledListSerializer,
    ScheduledNotificationSerializer,
    ScheduledPatchRequestSerializer,
    timestamp,
)
from notifications.api.envelope import V1_ERROR, envelope_schema, ok
from notifications.api.errors import ApiError
from notifications.api.idempotency import idempotent
from notifications.api.params import int_query_param
from notifications.api.permissions import requires
from notifications.bulk_scheduled import selectors, services
from notifications.bulk_scheduled.inputs import BulkInputError, bulk_input_parse, scheduled_at_parse
from notifications.models import DeliveryStatus, ScheduledChannel, ScheduledStatus
from notifications.pipeline import send_counts
from notifications.tenancy import platform_for_request

MAX_LIMIT = 100
IDEMPOTENCY_PARAM = OpenApiParameter(
    "Idempotency-Key",
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Replays within 24 h return the first response; the same key with another body is 422, "
        "a replay while the first request runs is 409."
    ),
)


def bad_request(exc: BulkInputError) -> ApiError:
    return ApiError(exc.message, status=400, error=exc.detail)


def base_url(request) -> str:
    return settings.PUBLIC_BASE_URL or request.build_absolute_uri("/")


def _time_param(request, name: str):
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    try:
        return scheduled_at_parse(raw, horizon=False)
    except BulkInputError:
        raise ApiError(f"Invalid {name} format", error=f"{name} must be RFC3339, e.g. 2026-06-15T09:00:00Z") from None


def _choice_param(request, name: str, choices) -> str:
    value = request.query_params.get(name, "").strip()
    if value and value not in choices:
        raise ApiError(f"Invalid {name}", error=f"{name} must be one of {', '.join(choices)}")
    return value


# --- Bulk sends ---------------------------------------------------------------


class BulkSendView(APIView):
    """POST a bulk send of one channel: now (200 + counts) or at `scheduled_at` (201 + the job)."""

    channel: str = ""
    sent_message = ""
    scheduled_message = ""

    @idempotent
    def post(self, request):
        platform = platform_for_request(request)
        try:
            data = bulk_input_parse(self.channel, request.data, request.FILES.getlist("file"))
            if data.scheduled_at is not None:
                job = services.scheduled_create(
                    platform=platform, data=data, created_by=request.user, base_url=base_url(request)
                )
                return ok(self.scheduled_message, ScheduledNotificationSerializer(job).data, status=201)
            result = services.bulk_send(
                platform=platform, data=data, base_url=base_url(request), created_by=request.user
            )
        except BulkInputError as exc:
            raise bad_request(exc) from None
        counts = result.counts
        if self.channel == ScheduledChannel.PUSH:
            payload = {
                "target_users": result.target_users,
                "sent": counts.units_sent,
                "failed": counts.units_failed,
                "image": result.image_url,
                # Users, not tokens: those waiting for a retry, and those with no device to send to.
                "pending": counts.pending,
                "no_device": counts.unreached,
                # Held back by a delivery rule (frequency cap, suppression list); never sent.
                "suppressed": counts.suppressed,
            }
        else:
            payload = {
                "total_recipients": counts.total_recipients,
                "sent": counts.sent,
                "failed": counts.failed,
                # Deliveries waiting for a retry (a provider that refused for now) or for the end of
                # the recipient's quiet hours or frequency-cap window: neither sent nor failed yet.
                "pending": counts.pending,
                # Held back by a delivery rule (frequency cap, suppression list); never sent.
                "suppressed": counts.suppressed,
            }
        return ok(self.sent_message, payload)


def _envelope_example(message: str, data, status: int) -> dict:
    return {"message": message, "data": data, "success": True, "status_code": status, "metadata": None}


_JOB_EXAMPLE = {
    "id": 42,
    "channel": "sms",
    "title": "",
    "message": "Reminder: class starts at 9 AM.",
    "html": "",
    "scheduled_at": "2026-06-15T08:00:00Z",
    "status": "pending",
    "target_user_ids": [10, 11, 12],
    "target_role": "",
    "target_raw": {},
    "attempt_count": 0,
    "last_error": "",
    "processing_started_at": None,
    "sent_at": None,
    "cancelled_at": None,
    "created_by": 7,
    "created_at": "2026-06-14T16:20:05Z",
    "updated_at": "2026-06-14T16:20:05Z",
}


def _response_examples(*, channel: str, sent: str, scheduled: str, sent_data: dict) -> list[OpenApiExample]:
    """What the endpoint answers (200 sent now, 201 scheduled), shown beside the request examples."""
    job = {**_JOB_EXAMPLE, "channel": channel}
    return [
        OpenApiExample("Sent now", _envelope_example(sent, sent_data, 200), response_only=True, status_codes=["200"]),
        OpenApiExample("Scheduled", _envelope_example(scheduled, job, 201), response_only=True, status_codes=["201"]),
    ]


def _bulk_schema(
    *,
    channel_name: str,
    channel: str,
    request,
    result,
    examples,
    sent: str,
    scheduled: str,
    multipart: bool,
    sent_data: dict | None = None,
):
    content = {"multipart/form-data": request, "application/json": request} if multipart else request
    sent_data = sent_data or {"total_recipients": 120, "sent": 118, "failed": 2}
    return extend_schema_view(
        post=extend_schema(
            tags=["v1 bulk"],
            summary=f"Send or schedule {channel_name}",
            description=f"`{sent}` (200) without `scheduled_at`; `{scheduled}` (201) with it.",
            request=content,
            parameters=[IDEMPOTENCY_PARAM],
            # Request examples are request-only: untagged, Swagger UI would show them as responses too.
            examples=[
                *(
                    OpenApiExample(e.name, e.value, summary=e.summary, description=e.description, request_only=True)
                    for e in examples
                ),
                *_response_examples(channel=channel, sent=sent, scheduled=scheduled, sent_data=sent_data),
            ],
            responses={
                200: envelope_schema(f"V1Bulk{channel_name.title().replace(' ', '').replace('-', '')}Sent", result),
                201: envelope_schema(
                    f"V1Bulk{channel_name.title().replace(' ', '').replace('-', '')}Scheduled",
                    ScheduledNotificationSerializer(),
                ),
                400: V1_ERROR,
                401: V1_ERROR,
                403: V1_ERROR,
                409: V1_ERROR,
                422: V1_ERROR,
            },
        )
    )


@_bulk_schema(
    channel_name="SMS",
    channel="sms",
    request=BulkSmsRequestSerializer,
    result=ImmediateResultSerializer(),
    examples=[
        OpenApiExample("Immediate", {"message": "Your subscription expires tomorrow.", "role": "STUDENT"}),
        OpenApiExample(
            "Scheduled",
            {
                "message": "Reminder: class starts at 9 AM.",
                "user_ids": [10, 11, 12],
                "scheduled_at": "2026-06-15T08:00:00Z",
            },
        ),
    ],
    sent="Bulk SMS sent",
    scheduled="SMS scheduled",
    multipart=False,
)
class BulkSmsView(BulkSendView):
    permission_classes = [requires("notifications.bulk_sms")]
    channel = ScheduledChannel.SMS
    sent_message = "Bulk SMS sent"
    scheduled_message = "SMS scheduled"


@_bulk_schema(
    channel_name="email",
    channel="email",
    request=BulkEmailRequestSerializer,
    result=ImmediateResultSerializer(),
    examples=[
        OpenApiExample(
            "Immediate",
            {
                "subject": "Your certificate is ready",
                "message": "Download it from your profile.",
                "html": "<p>Download it from <a href='https://learn.example.com/me'>your profile</a>.</p>",
                "emails": ["amina@example.com"],
                "user_ids": [10, 11],
            },
        ),
    ],
    sent="Bulk email sent",
    scheduled="Email scheduled",
    multipart=True,
)
class BulkEmailView(BulkSendView):
    permission_classes = [requires("notifications.bulk_email")]
    channel = ScheduledChannel.EMAIL
    sent_message = "Bulk email sent"
    scheduled_message = "Email scheduled"


@_bulk_schema(
    channel_name="push",
    channel="push",
    request=BulkPushRequestSerializer,
    result=PushResultSerializer(),
    examples=[
        OpenApiExample(
            "Immediate", {"title": "Practice reminder", "message": "Today's quiz is open.", "role": "STUDENT"}
        ),
    ],
    sent_data={
        "target_users": 120,
        "sent": 173,
        "failed": 4,
        "image": "https://notify.example.com/media/notification_images/3f2a9c.png",
    },
    sent="Bulk push notification sent",
    scheduled="Push notification scheduled",
    multipart=True,
)
class BulkPushView(BulkSendView):
    permission_classes = [requires("notifications.bulk_push")]
    channel = ScheduledChannel.PUSH
    sent_message = "Bulk push notification sent"
    scheduled_message = "Push notification scheduled"


@_bulk_schema(
    channel_name="in-app",
    channel="in_app",
    request=BulkInAppRequestSerializer,
    result=ImmediateResultSerializer(),
    examples=[
        OpenApiExample(
            "Immediate",
            {
                "title": "Maintenance tonight",
                "message": "The app will be unavailable 11 PM to 1 AM UTC.",
                "role": "STUDENT",
            },
        ),
    ],
    sent="Bulk in-app notification sent",
    scheduled="In-app notification scheduled",
    multipart=False,
)
class BulkInAppView(BulkSendView):
    permission_classes = [requires("notifications.bulk_in_app")]
    channel = ScheduledChannel.IN_APP
    sent_message = "Bulk in-app notification sent"
    scheduled_message = "In-app notification scheduled"


# --- Scheduled job management -------------------------------------------------


def _job_for(request, pk: int):
    platform = platform_for_request(request)
    job = selectors.scheduled_for(platform=platform).select_related("platform").filter(pk=pk).first()
    if job is None:
        raise ApiError("Scheduled notification not found", status=404, error=f"No scheduled notification {pk}")
    return job


class ScheduledListView(APIView):
    permission_classes = [requires("notifications_scheduled.list")]

    @extend_schema(
        tags=["v1 scheduled"],
        summary="List scheduled notifications",
        operation_id="v1_scheduled_list",
        parameters=[
            OpenApiParameter("status", str, enum=ScheduledStatus.values),
            OpenApiParameter("channel", str, enum=ScheduledChannel.values),
            OpenApiParameter("after", str, description="RFC3339: scheduled_at >= after"),
            OpenApiParameter("before", str, description="RFC3339: scheduled_at <= before"),
            OpenApiParameter("limit", int, description="Page size (default 20, max 100)"),
            OpenApiParameter("page", int, description="Page number, 1-based (default 1, at most 1,000,000)"),
        ],
        responses={200: ScheduledListSerializer, 400: V1_ERROR, 401: V1_ERROR, 403: V1_ERROR},
    )
    def get(self, request):
        status = _choice_param(request, "status", ScheduledStatus.values)
        channel = _choice_param(request, "channel", ScheduledChannel.values)
        after = _time_param(request, "after")
        before = _time_param(request, "before")
        limit = int_query_param(request, "limit", 20, minimum=1, maximum=MAX_LIMIT)
        page = int_query_param(request, "page", 1, minimum=1, maximum=settings.API_MAX_PAGE)
        qs = selectors.scheduled_list(
            platform=platform_for_request(request), status=status, channel=channel, after=after, before=before
        )
        rows = list(qs[(page - 1) * limit : page * limit])
        # The document answers this list without the envelope.
        return Response(
            {
                "scheduled_notifications": ScheduledNotificationSerializer(rows, many=True).data,
                "total_count": qs.count(),
                "limit": limit,
                "page": page,
            }
        )


_PATCH_FIELDS = {
    ScheduledChannel.SMS: ("message", "user_ids", "role", "phone_numbers"),
    ScheduledChannel.EMAIL: ("subject", "message", "html", "user_ids", "role", "emails"),
    ScheduledChannel.PUSH: ("title", "message", "user_ids", "role"),
    ScheduledChannel.IN_APP: ("title", "message", "user_ids", "role", "type", "level"),
}


class ScheduledDetailView(APIView):
    def get_permissions(self):
        key = "notifications_scheduled.update" if self.request.method == "PATCH" else "notifications_scheduled.get"
        return [requires(key)()]

    @extend_schema(
        tags=["v1 scheduled"],
        summary="Get a scheduled notification",
        operation_id="v1_scheduled_get",
        responses={
            200: envelope_schema("V1ScheduledGet", ScheduledNotificationSerializer()),
            401: V1_ERROR,
            403: V1_ERROR,
            404: V1_ERROR,
        },
    )
    def get(self, request, pk: int):
        job = _job_for(request, pk)
        return ok("Scheduled notification retrieved", ScheduledNotificationSerializer(job).data)

    @extend_schema(
        tags=["v1 scheduled"],
        summary="Edit or reschedule a pending scheduled notification",
        operation_id="v1_scheduled_update",
        description=(
            "Fields of the job's channel's create request; omitted ones keep their value. The result is "
            "checked like a new job (same 400 messages). Only `pending` jobs can be edited."
        ),
        request={
            "application/json": ScheduledPatchRequestSerializer,
            "multipart/form-data": ScheduledPatchRequestSerializer,
        },
        parameters=[IDEMPOTENCY_PARAM],
        responses={
            200: envelope_schema("V1ScheduledUpdated", ScheduledNotificationSerializer()),
            400: V1_ERROR,
            401: V1_ERROR,
            403: V1_ERROR,
            404: V1_ERROR,
        },
    )
    @idempotent
    def patch(self, request, pk: int):
        job = _job_for(request, pk)
        if job.status != ScheduledStatus.PENDING:
            raise ApiError(
                "Scheduled notification cannot be edited",
                error=f"Only pending jobs can be edited; this one is {job.status}",
            )
        merged = services.job_as_input(job)
        for name in _PATCH_FIELDS[job.channel]:
            if name in request.data:
                merged[name] = request.data[name] if not hasattr(request.data, "getlist") else request.data.get(name)
        try:
            data = bulk_input_parse(job.channel, merged, request.FILES.getlist("file"))
            scheduled_at = job.scheduled_at
            if "scheduled_at" in request.data:
                scheduled_at = scheduled_at_parse(request.data.get("scheduled_at"))
                if scheduled_at is None:
                    raise BulkInputError("Invalid scheduled_at format", "scheduled_at cannot be empty on an edit")
            job = services.scheduled_update(job=job, data=data, scheduled_at=scheduled_at, base_url=base_url(request))
        except BulkInputError as exc:
            raise bad_request(exc) from None
        except services.JobStateError as exc:
            raise ApiError("Scheduled notification cannot be edited", error=str(exc)) from None
        return ok("Scheduled notification updated", ScheduledNotificationSerializer(job).data)


class ScheduledCancelView(APIView):
    permission_classes = [requires("notifications_scheduled.cancel")]

    @extend_schema(
        tags=["v1 scheduled"],
        summary="Cancel a pending or processing scheduled notification",
        operation_id="v1_scheduled_cancel",
        request=None,
        parameters=[IDEMPOTENCY_PARAM],
        responses={
            200: envelope_schema("V1ScheduledCancelled", CancelResultSerializer()),
            400: V1_ERROR,
            401: V1_ERROR,
            403: V1_ERROR,
            404: V1_ERROR,
        },
    )
    @idempotent
    def post(self, request, pk: int):
        job = _job_for(request, pk)
        try:
            job = services.scheduled_cancel(job=job)
        except services.JobStateError:
            raise ApiError(
                "Scheduled notification cannot be cancelled",
                error=f"Only pending or processing jobs can be cancelled; this one is {job.status}",
            ) from None
        return ok(
            "Scheduled notification cancelled",
            {"id": job.pk, "status": job.status, "cancelled_at": timestamp(job.cancelled_at)},
        )


class ScheduledDeliveriesView(APIView):
    permission_classes = [requires("notifications_scheduled.get")]

    @extend_schema(
        tags=["v1 scheduled"],
        summary="Per-recipient deliveries of a scheduled notification",
        operation_id="v1_scheduled_deliveries",
        parameters=[
            OpenApiParameter("status", str, enum=DeliveryStatus.values),
            OpenApiParameter("limit", int, description="Page size (default 20, max 100)"),
            OpenApiParameter("page", int, description="Page number, 1-based (default 1, at most 1,000,000)"),
        ],
        responses={200: DeliveryPageSerializer, 400: V1_ERROR, 401: V1_ERROR, 403: V1_ERROR, 404: V1_ERROR},
    )
    def get(self, request, pk: int):
        job = _job_for(request, pk)
        status = _choice_param(request, "status", DeliveryStatus.values)
        limit = int_query_param(request, "limit", 20, minimum=1, maximum=MAX_LIMIT)
        page = int_query_param(request, "page", 1, minimum=1, maximum=settings.API_MAX_PAGE)
        qs = selectors.job_deliveries(job=job, status=status)
        rows = list(qs[(page - 1) * limit : page * limit])
        counts = send_counts(source=job.source)
        return Response(
            {
                "deliveries": DeliverySerializer(rows, many=True).data,
                "total_count": qs.count(),
                "limit": limit,
                "page": page,
                "summary": {
                    "total_recipients": counts.total_recipients,
                    "sent": counts.sent,
                    "failed": counts.failed,
                    "pending": counts.pending,
                    "suppressed": counts.suppressed,
                    "units_sent": counts.units_sent,
                    "units_failed": counts.units_failed,
                },
            }
        )

"""The org-scoped inbox of IBL §7.1: list, count, status changes, delete.

User paths (`orgs/{org}/users/{user_id}/...`, `user_id` = username) act on
that user's inbox; org paths (`orgs/{org}/notifications/`, `mark-all-as-read`)
act on the caller's own inbox on that platform, like `mark-all-as-read`
does in the document. A platform admin reaches any member's inbox through
the user paths. The rows are the ones `/api/v1/notifications` lists.
"""

from __future__ import annotations

import uuid

from django.core.paginator import EmptyPage, Paginator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import inbox, selectors
from notifications.api.errors import ApiError
from notifications.api.ibl_access import DELETE, LIST, WRITE, acting_on, validated
from notifications.api.ibl_serializers import (
    BulkStatusSerializer,
    IBLNotificationPageSerializer,
    IBLNotificationSerializer,
    InboxCountQuerySerializer,
    InboxListQuerySerializer,
    MarkAllReadSerializer,
    StatusUpdateSerializer,
)
from notifications.api.permissions import requires
from notifications.channels import Channel

TAG = "Notifications"

DETAIL = inline_serializer("IBLDetail", {"detail": serializers.CharField()})
MESSAGE_SUCCESS = inline_serializer(
    "IBLMessageSuccess", {"message": serializers.CharField(), "success": serializers.BooleanField()}
)
MESSAGE = inline_serializer("IBLMessage", {"message": serializers.CharField()})
ERROR = inline_serializer("IBLErrorMessage", {"error": serializers.CharField()})
COUNT = inline_serializer("IBLNotificationCount", {"count": serializers.IntegerField()})
MARKED = inline_serializer("IBLMarkAllRead", {"message": serializers.CharField(), "count": serializers.IntegerField()})
FIELD_ERRORS = OpenApiResponse(
    OpenApiTypes.OBJECT, description="Invalid input: `{field: [messages]}` naming the bad parameter"
)
NOT_FOUND = OpenApiResponse(DETAIL, description="Unknown platform or user, or one the caller may not see")
FORBIDDEN = OpenApiResponse(DETAIL, description="RBAC is enabled and the caller lacks the grant")

LIST_PARAMETERS = [
    OpenApiParameter("status", str, enum=["UNREAD", "READ", "CANCELLED"], description="Only this status"),
    OpenApiParameter("channel", str, enum=Channel.values, description="Only this"),
    OpenApiParameter("exclude_channel", str, enum=Channel.values),
    OpenApiParameter("start_date", str, description="Created on or after: YYYY-MM-DD (UTC day) or ISO 8601 date-time"),
    OpenApiParameter("end_date", str, description="Created on or before: YYYY-MM-DD (whole UTC day) or date-time"),
    OpenApiParameter("page", int, description="Page number, from 1"),
    OpenApiParameter("page_size", int, description="Results per page (default 20, at most 100)"),
]
LIST_DESCRIPTION = (
    "Unread first, then read, each newest first. Without `status`, cancelled (dismissed) "
    "notifications are left out; `status=CANCELLED` lists them. `next` and `previous` are "
    "page numbers. A page past the end is a 404."
)

STATUS_UPDATED = "Notification status updated successfully"
DOES_NOT_EXIST = "Notification does not exist"


def _page(request, platform, owner) -> Response:
    q = validated(InboxListQuerySerializer, request.query_params)
    qs = selectors.inbox_filtered(
        user=owner,
        platform=platform,
        statuses=[q["status"]] if q.get("status") else None,
        channel=q.get("channel"),
        exclude_channel=q.get("exclude_channel"),
        created_from=q["created_from"],
        created_before=q["created_before"],
    ).select_related("user")
    paginator = Paginator(qs, q["page_size"])
    try:
        page = paginator.page(q["page"])
    except EmptyPage:
        raise ApiError("Invalid page.", status=404) from None
    return Response(
        {
            "count": paginator.count,
            "next": page.next_page_number() if page.has_next() else None,
            "previous": page.previous_page_number() if page.has_previous() else None,
            "results": IBLNotificationSerializer(page.object_list, many=True).data,
        }
    )


def _status_set(request, platform, owner) -> Response:
    data = validated(StatusUpdateSerializer, request.data, extra={"message": None, "success": False})
    try:
        inbox.inbox_status_set(user=owner, platform=platform, ids=data["notification_id"], status=data["status"])
    except inbox.NotificationNotFound:
        raise ApiError(DOES_NOT_EXIST, status=404, body={"message": DOES_NOT_EXIST, "success": False}) from None
    except inbox.StatusChangeNotAllowed as exc:
        raise ApiError(
            str(exc), status=400, body={"message": str(exc), "success": False, "notification_id": [str(exc)]}
        ) from None
    return Response({"message": STATUS_UPDATED, "success": True})


def _bulk(request, platform, owner) -> Response:
    data = validated(BulkStatusSerializer, request.data, extra={"error": None})
    try:
        inbox.inbox_bulk_update(user=owner, platform=platform, status=data["status"])
    except inbox.NotificationNotFound:
        raise ApiError(DOES_NOT_EXIST, status=400, body={"error": DOES_NOT_EXIST}) from None
    return Response({"message": STATUS_UPDATED})


PUT_SCHEMA = {
    "request": StatusUpdateSerializer,
    "responses": {
        200: MESSAGE_SUCCESS,
        400: OpenApiResponse(
            MESSAGE_SUCCESS, description="Invalid input, or a change away from CANCELLED (names the notification)"
        ),
        403: FORBIDDEN,
        404: OpenApiResponse(MESSAGE_SUCCESS, description="`Notification does not exist`: an id is not yours"),
    },
}
BULK_SCHEMA = {
    "request": BulkStatusSerializer,
    "responses": {
        200: MESSAGE,
        400: OpenApiResponse(ERROR, description="`Notification does not exist` when the inbox is empty"),
        403: FORBIDDEN,
        404: NOT_FOUND,
    },
    "description": "Sets one status on every notification of the inbox. Cancelled ones stay cancelled "
    "unless the new status is CANCELLED.",
}


class UserNotificationsView(APIView):
    permission_classes = [requires(owner_kwarg="user_id", rbac=LIST, rbac_write=WRITE)]

    @extend_schema(
        tags=[TAG],
        operation_id="orgs_users_notifications_list",
        summary="List a user's notifications",
        description=LIST_DESCRIPTION,
        parameters=LIST_PARAMETERS,
        responses={200: IBLNotificationPageSerializer, 400: FIELD_ERRORS, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, org, user_id):
        platform, owner = acting_on(request, user_id)
        return _page(request, platform, owner)

    @extend_schema(
        tags=[TAG],
        operation_id="orgs_users_notifications_update",
        summary="Update the status of notifications by id",
        **PUT_SCHEMA,
    )
    def put(self, request, org, user_id):
        platform, owner = acting_on(request, user_id)
        return _status_set(request, platform, owner)


class UserNotificationsBulkView(APIView):
    permission_classes = [requires(owner_kwarg="user_id", rbac=WRITE)]

    @extend_schema(
        tags=[TAG],
        operation_id="orgs_users_notifications_bulk_update",
        summary="Set one status on all of a user's notifications",
        **BULK_SCHEMA,
    )
    def patch(self, request, org, user_id):
        platform, owner = acting_on(request, user_id)
        return _bulk(request, platform, owner)


class UserNotificationDetailView(APIView):
    permission_classes = [requires(owner_kwarg="user_id", rbac=DELETE)]

    @extend_schema(
        tags=[TAG],
        operation_id="orgs_users_notifications_delete",
        summary="Delete one notification",
        description="Removes the notification from the inbox for good and erases its content. An "
        "anonymous delivery receipt stays so that a retried send never delivers it again.",
        responses={
            200: MESSAGE,
            403: FORBIDDEN,
            404: OpenApiResponse(MESSAGE, description="`Notification does not exist`"),
        },
    )
    def delete(self, request, org, user_id, notification_id):
        platform, owner = acting_on(request, user_id)
        try:
            inbox.inbox_delete(user=owner, platform=platform, notification_id=uuid.UUID(notification_id))
        except (ValueError, inbox.NotificationNotFound):
            raise ApiError(DOES_NOT_EXIST, status=404, body={"message": DOES_NOT_EXIST}) from None
        return Response({"message": "Notification deleted successfully"})


class UserNotificationsCountView(APIView):
    permission_classes = [requires(owner_kwarg="user_id", rbac=LIST)]

    @extend_schema(
        tags=[TAG],
        operation_id="orgs_users_notifications_count",
        summary="Count a user's notifications",
        description="Without `status`, counts unread and read notifications (as the list shows them).",
        parameters=LIST_PARAMETERS[:2],
        responses={200: COUNT, 400: FIELD_ERRORS, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, org, user_id):
        platform, owner = acting_on(request, user_id)
        q = validated(InboxCountQuerySerializer, request.query_params)
        qs = selectors.inbox_filtered(
            user=owner,
            platform=platform,
            statuses=[q["status"]] if q.get("status") else None,
            channel=q.get("channel"),
        )
        return Response({"count": qs.count()})


class OrgNotificationsView(APIView):
    permission_classes = [requires(rbac=LIST, rbac_write=WRITE)]

    @extend_schema(
        tags=[TAG],
        operation_id="orgs_notifications_list",
        summary="List your notifications on this platform",
        description=LIST_DESCRIPTION + " Acts on the caller's own inbox on the platform.",
        parameters=LIST_PARAMETERS,
        responses={200: IBLNotificationPageSerializer, 400: FIELD_ERRORS, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, org):
        platform = request.platform
        return _page(request, platform, request.user)

    @extend_schema(
        tags=[TAG],
        operation_id="orgs_notifications_update",
        summary="Update the status of your notifications by id",
        **PUT_SCHEMA,
    )
    def put(self, request, org):
        platform = request.platform
        return _status_set(request, platform, request.user)


class OrgNotificationsBulkView(APIView):
    permission_classes = [requires(rbac=WRITE)]

    @extend_schema(
        tags=[TAG],
        operation_id="orgs_notifications_bulk_update",
        summary="Set one status on all your notifications on this platform",
        **BULK_SCHEMA,
    )
    def patch(self, request, org):
        platform = request.platform
        return _bulk(request, platform, request.user)


class MarkAllReadView(APIView):
    permission_classes = [requires(rbac=WRITE)]

    @extend_schema(
        tags=[TAG],
        operation_id="orgs_mark_all_as_read",
        summary="Mark all (or the given) unread notifications as read",
        description="Acts on the caller's own inbox. `count` is how many changed; ids that are not "
        "your unread notifications are skipped.",
        request=MarkAllReadSerializer,
        responses={200: MARKED, 400: FIELD_ERRORS, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, platform_key):
        platform = request.platform
        data = validated(MarkAllReadSerializer, request.data, extra={"message": None})
        count = inbox.inbox_mark_all_read(user=request.user, platform=platform, ids=data.get("notification_ids"))
        return Response({"message": f"Successfully marked {count} notifications as read", "count": count})

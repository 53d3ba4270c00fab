"""The `/api/v1/` inbox: polling fallback of the WebSocket (bulk document §11).

Beyond the document: one notification marked read, one dismissed (CANCELLED),
all marked read, an unread-only list, and `POST /api/v1/inbox-tokens` for the
short-lived tokens that pages embedding `<notify-inbox>` use. Every inbox
view lists `token_scopes = ("inbox",)`: those are the only views an inbox
token reaches (see notifications/inbox_tokens.py).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from notifications import inbox, inbox_tokens, selectors
from notifications.api.envelope import V1_ERROR, envelope_schema, ok
from notifications.api.errors import ApiError
from notifications.api.params import int_query_param
from notifications.api.permissions import requires
from notifications.api.v1_serializers import V1NotificationSerializer
from notifications.models import InboxStatus, TokenScope
from notifications.tenancy import platform_for_request

MAX_LIMIT = 100
INBOX = (TokenScope.INBOX,)


class InboxListView(APIView):
    permission_classes = [requires("notifications.list_mine")]
    token_scopes = INBOX

    @extend_schema(
        tags=["v1 inbox"],
        parameters=[
            OpenApiParameter("limit", int, description="Page size (default 20, max 100)"),
            OpenApiParameter("offset", int, description="Rows to skip (default 0, at most 100,000,000)"),
            OpenApiParameter("status", str, enum=["unread"], description="`unread`: unread notifications only"),
            OpenApiParameter(
                "before",
                str,
                description="Id of a notification of this inbox: the page starts after it (newest first). "
                "Pages by cursor never skip or repeat rows that arrive or leave meanwhile.",
            ),
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
        status = request.query_params.get("status", "")
        if status not in ("", "unread"):
            raise ApiError("Invalid status", error="status must be 'unread' or absent")
        unread_only = status == "unread"
        platform = platform_for_request(request)
        before = _cursor(request, platform)
        rows, counts = selectors.inbox_page(
            user=request.user, platform=platform, limit=limit, offset=offset, unread_only=unread_only, before=before
        )
        data = {
            "notifications": V1NotificationSerializer(rows, many=True).data,
            # From the counter, not COUNT(*): a user may hold hundreds of thousands.
            "total_count": counts[InboxStatus.UNREAD] + (0 if unread_only else counts[InboxStatus.READ]),
            "limit": limit,
            "offset": offset,
        }
        return ok("Notifications retrieved", data)


def _cursor(request, platform):
    raw = request.query_params.get("before")
    if not raw:
        return None
    try:
        pk = uuid.UUID(raw)
    except ValueError:
        raise ApiError("Invalid before", error="before must be a notification id") from None
    created_at = (
        selectors.inbox_for(user=request.user, platform=platform).filter(pk=pk).values_list("created_at", flat=True)
    ).first()
    if created_at is None:
        raise ApiError("Invalid before", error="before must be a notification of this inbox")
    return created_at, pk


class UnreadCountView(APIView):
    permission_classes = [requires("notifications.count_unread")]
    token_scopes = INBOX

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


STATUS_DATA = envelope_schema(
    "V1InboxStatus",
    inline_serializer(
        "V1InboxStatusData",
        {"id": serializers.UUIDField(), "status": serializers.CharField(), "unread": serializers.IntegerField()},
    ),
)


class _OneStatusView(APIView):
    """POST sets one inbox status on one of the caller's notifications."""

    permission_classes = [requires("notifications.update_mine")]
    token_scopes = INBOX
    status: str = ""
    done: str = ""

    def post(self, request, notification_id: uuid.UUID):
        platform = platform_for_request(request)
        try:
            inbox.inbox_status_set(user=request.user, platform=platform, ids=[notification_id], status=self.status)
        except inbox.NotificationNotFound:
            raise ApiError("Notification not found", status=404, error=f"No notification {notification_id}") from None
        except inbox.StatusChangeNotAllowed as exc:
            raise ApiError("Notification is dismissed", status=409, error=str(exc)) from None
        unread = selectors.inbox_unread_count(user=request.user, platform=platform)
        return ok(self.done, {"id": str(notification_id), "status": self.status, "unread": unread})


class MarkReadView(_OneStatusView):
    status = InboxStatus.READ
    done = "Notification marked read"

    @extend_schema(
        tags=["v1 inbox"],
        request=None,
        description="Marks one of the caller's notifications read. A dismissed one stays dismissed (409).",
        responses={200: STATUS_DATA, 401: V1_ERROR, 403: V1_ERROR, 404: V1_ERROR, 409: V1_ERROR},
    )
    def post(self, request, notification_id: uuid.UUID):
        return super().post(request, notification_id)


class DismissView(_OneStatusView):
    status = InboxStatus.CANCELLED
    done = "Notification dismissed"

    @extend_schema(
        tags=["v1 inbox"],
        request=None,
        description="Dismisses one of the caller's notifications (status CANCELLED, final): "
        "it leaves the inbox list and the unread count.",
        responses={200: STATUS_DATA, 401: V1_ERROR, 403: V1_ERROR, 404: V1_ERROR},
    )
    def post(self, request, notification_id: uuid.UUID):
        return super().post(request, notification_id)


class MarkAllReadView(APIView):
    permission_classes = [requires("notifications.update_mine")]
    token_scopes = INBOX

    @extend_schema(
        tags=["v1 inbox"],
        request=None,
        description="Marks every unread notification of the caller's inbox read.",
        responses={
            200: envelope_schema(
                "V1MarkAllRead",
                inline_serializer(
                    "V1MarkAllReadData", {"count": serializers.IntegerField(), "unread": serializers.IntegerField()}
                ),
            ),
            401: V1_ERROR,
            403: V1_ERROR,
        },
    )
    def post(self, request):
        platform = platform_for_request(request)
        count = inbox.inbox_mark_all_read(user=request.user, platform=platform)
        unread = selectors.inbox_unread_count(user=request.user, platform=platform)
        return ok("Notifications marked read", {"count": count, "unread": unread})


class InboxTokenRequestSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    username = serializers.CharField(required=False, max_length=150)

    def validate(self, attrs):
        if ("user_id" in attrs) == ("username" in attrs):
            raise serializers.ValidationError("Give exactly one of user_id and username.")
        return attrs


class InboxTokenView(APIView):
    """A platform's backend gets a short-lived token for one user's inbox, to hand to a page."""

    permission_classes = [requires("notifications.inbox_token")]

    @extend_schema(
        tags=["v1 inbox"],
        request=InboxTokenRequestSerializer,
        description="Issues a token that lives `INBOX_TOKEN_TTL_SECONDS` (15 minutes by default) and only "
        "lists, counts, marks and dismisses the named member's notifications on the caller's platform "
        "and opens the WebSocket; every other endpoint answers it 403. The member must belong to the "
        "caller's platform.",
        responses={
            201: envelope_schema(
                "V1InboxToken",
                inline_serializer(
                    "V1InboxTokenData",
                    {
                        "token": serializers.CharField(),
                        "expires_at": serializers.DateTimeField(),
                        "expires_in": serializers.IntegerField(),
                        "user_id": serializers.IntegerField(),
                        "platform": serializers.CharField(),
                    },
                ),
            ),
            400: V1_ERROR,
            401: V1_ERROR,
            403: V1_ERROR,
            404: V1_ERROR,
        },
    )
    def post(self, request):
        ser = InboxTokenRequestSerializer(data=request.data)
        if not ser.is_valid():
            raise ApiError("Invalid request", error=_first_error(ser.errors))
        platform = platform_for_request(request)
        member = selectors.platform_member_by(
            platform=platform, user_id=ser.validated_data.get("user_id"), username=ser.validated_data.get("username")
        )
        if member is None:
            raise ApiError("User not found", status=404, error="No active member of this platform by that name or id")
        token, raw = inbox_tokens.inbox_token_issue(user=member, platform=platform)
        data = {
            "token": raw,
            "expires_at": token.expires_at,
            "expires_in": round((token.expires_at - token.created_at).total_seconds()),
            "user_id": member.pk,
            "platform": platform.key,
        }
        return ok("Inbox token issued", data, status=201)


def _first_error(errors) -> str:
    for field, messages in errors.items():
        text = messages[0] if isinstance(messages, list) and messages else messages
        return str(text) if field == "non_field_errors" else f"{field}: {text}"
    return "invalid input"

"""Outbound webhooks on the IBL surface: `/api/notification/v1/platforms/{platform_key}/webhooks/...`.

Platform admins (plus `Ibl.Notifications/Webhook/action` where the platform
enables RBAC) register endpoints, read the signing secret, list the messages
owed to an endpoint with every attempt, and replay one message or every failed
one. Plain JSON answers and `{"detail": ...}` / `{field: [...]}` errors, as
on the rest of the surface; another platform's endpoint is a 404.
"""

from __future__ import annotations

from django.core.paginator import EmptyPage, Paginator
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.api.errors import ApiError
from notifications.api.ibl_access import validated
from notifications.api.permissions import requires
from notifications.api.schema import paginated
from notifications.permissions import PLATFORM_ADMIN
from webhooks import delivery, selectors, services
from webhooks.api.serializers import (
    EndpointCreatedSerializer,
    EndpointInSerializer,
    EndpointPatchSerializer,
    EndpointSerializer,
    MessageDetailSerializer,
    MessageListQuerySerializer,
    MessageSerializer,
    ReplayedSerializer,
    SecretSerializer,
)
from webhooks.apps import WEBHOOK_ACTION

TAG = "Webhooks"
DETAIL = inline_serializer("WebhookDetail", {"detail": serializers.CharField()})
ACCESS = {
    403: OpenApiResponse(DETAIL, description="Not an admin of this platform, or lacks the RBAC grant"),
    404: OpenApiResponse(DETAIL, description="Unknown platform or endpoint, or another platform's"),
}
BAD = {400: OpenApiResponse(description="`{field: [messages]}`, e.g. a URL on a private address")}
SIGNING = (
    "Every message is a POST of `{type, timestamp, data}` signed per Standard Webhooks: headers "
    "`webhook-id` (unique per message, the same on retries and replays: de-duplicate on it), "
    "`webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256>` with the endpoint's `whsec_` secret). "
)


class WebhookAdmin(requires(PLATFORM_ADMIN, rbac=WEBHOOK_ACTION)):
    pass


class _View(APIView):
    permission_classes = [WebhookAdmin]

    def endpoint(self, webhook_id):
        return selectors.endpoint_get(platform=self.request.platform, endpoint_id=webhook_id)


class WebhooksView(_View):
    @extend_schema(
        tags=[TAG],
        operation_id="platforms_webhooks_list",
        summary="List the platform's webhook endpoints",
        responses={200: EndpointSerializer(many=True), **ACCESS},
    )
    def get(self, request, platform_key):
        return Response(EndpointSerializer(selectors.endpoints_for(platform=request.platform), many=True).data)

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_webhooks_create",
        summary="Register a webhook endpoint",
        description=SIGNING
        + "The URL must resolve to public addresses only (no loopback, private or link-local ranges, "
        "checked again before every attempt, and connected to by the checked address); the answer "
        "carries the generated `secret`, which platform admins can read again at `.../secret/`.",
        request=EndpointInSerializer,
        responses={201: EndpointCreatedSerializer, **BAD, **ACCESS, 409: OpenApiResponse(DETAIL)},
    )
    def post(self, request, platform_key):
        data = validated(EndpointInSerializer, request.data)
        endpoint = services.endpoint_create(platform=request.platform, **data)
        body = {**EndpointSerializer(endpoint).data, "secret": endpoint.secret}
        return Response(body, status=201)


class WebhookView(_View):
    @extend_schema(
        tags=[TAG],
        operation_id="platforms_webhooks_retrieve",
        summary="Get a webhook endpoint",
        responses={200: EndpointSerializer, **ACCESS},
    )
    def get(self, request, platform_key, webhook_id):
        return Response(EndpointSerializer(self.endpoint(webhook_id)).data)

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_webhooks_partial_update",
        summary="Change a webhook endpoint",
        description="Only the fields given change. `is_active: true` enables an endpoint that was disabled "
        "after failing for days (replay its failed messages afterwards).",
        request=EndpointPatchSerializer,
        responses={200: EndpointSerializer, **BAD, **ACCESS},
    )
    def patch(self, request, platform_key, webhook_id):
        endpoint = self.endpoint(webhook_id)
        data = validated(EndpointPatchSerializer, request.data)
        return Response(EndpointSerializer(services.endpoint_update(endpoint=endpoint, **data)).data)

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_webhooks_destroy",
        summary="Delete a webhook endpoint, its messages and their attempts",
        responses={204: None, **ACCESS},
    )
    def delete(self, request, platform_key, webhook_id):
        services.endpoint_delete(endpoint=self.endpoint(webhook_id))
        return Response(status=204)


class WebhookSecretView(_View):
    @extend_schema(
        tags=[TAG],
        operation_id="platforms_webhooks_secret_retrieve",
        summary="Read the endpoint's signing secret",
        responses={200: SecretSerializer, **ACCESS, 409: OpenApiResponse(DETAIL)},
    )
    def get(self, request, platform_key, webhook_id):
        secret = self.endpoint(webhook_id).secret
        if not secret:
            raise ApiError("The stored secret is unreadable (the server's key changed); rotate it.", status=409)
        return Response({"secret": secret})

    @extend_schema(
        tags=[TAG],
        operation_id="platforms_webhooks_secret_rotate",
        summary="Rotate the endpoint's signing secret",
        description="A new secret, used from the next attempt on; the old one stops at once.",
        request=None,
        responses={200: SecretSerializer, **ACCESS},
    )
    def post(self, request, platform_key, webhook_id):
        return Response({"secret": services.endpoint_secret_rotate(endpoint=self.endpoint(webhook_id))})


class WebhookMessagesView(_View):
    @extend_schema(
        tags=[TAG],
        operation_id="platforms_webhooks_messages_list",
        summary="List the messages owed to an endpoint",
        description="Newest first. `status`: pending (first try or a retry to come), delivered, failed "
        "(attempts used up, or the endpoint was disabled). `next`/`previous` are page numbers.",
        parameters=[
            OpenApiParameter("status", str, enum=["pending", "delivered", "failed"]),
            OpenApiParameter("event_type", str),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int, description="default 20, at most 100"),
        ],
        responses={200: paginated("WebhookMessagePage", MessageSerializer(many=True)), **BAD, **ACCESS},
    )
    def get(self, request, platform_key, webhook_id):
        endpoint = self.endpoint(webhook_id)
        q = validated(MessageListQuerySerializer, request.query_params)
        qs = selectors.messages_for(endpoint=endpoint, status=q.get("status"), event_type=q.get("event_type"))
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
                "results": MessageSerializer(page.object_list, many=True).data,
            }
        )


class WebhookMessageView(_View):
    @extend_schema(
        tags=[TAG],
        operation_id="platforms_webhooks_messages_retrieve",
        summary="A message with its payload and every attempt (status code, short error)",
        responses={200: MessageDetailSerializer, **ACCESS},
    )
    def get(self, request, platform_key, webhook_id, message_id):
        message = selectors.message_get(endpoint=self.endpoint(webhook_id), message_id=message_id)
        return Response(MessageDetailSerializer(message).data)


class WebhookMessageReplayView(_View):
    @extend_schema(
        tags=[TAG],
        operation_id="platforms_webhooks_messages_replay",
        summary="Send one message again",
        description="A new round of attempts starts now, with the same `webhook-id`. A message of a "
        "disabled endpoint fails at once: enable the endpoint first.",
        request=None,
        responses={202: MessageSerializer, **ACCESS},
    )
    def post(self, request, platform_key, webhook_id, message_id):
        message = selectors.message_get(endpoint=self.endpoint(webhook_id), message_id=message_id)
        return Response(MessageSerializer(delivery.message_replay(message=message)).data, status=202)


class WebhookReplayFailedView(_View):
    @extend_schema(
        tags=[TAG],
        operation_id="platforms_webhooks_replay_failed",
        summary="Send every failed message of the endpoint again",
        description="Messages whose last attempt failed: given up, or waiting for a retry. Each starts a "
        "new round of attempts now, with its own `webhook-id`.",
        request=None,
        responses={202: ReplayedSerializer, **ACCESS},
    )
    def post(self, request, platform_key, webhook_id):
        count = delivery.messages_replay_failed(endpoint=self.endpoint(webhook_id))
        return Response({"replayed": count}, status=202)

"""`/webhooks/email/{provider}/tracking/`: where an email provider posts its delivery receipts.

The provider authenticates as anymail documents for it (basic auth with
`ANYMAIL_WEBHOOK_SECRET` in the URL given to the provider, plus its signature
where it signs); `notifications.email_receipts` does the work.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.email_receipts import TRACKING_VIEWS, ReceiptRefused, tracking_webhook_handle

DETAIL = inline_serializer("ReceiptWebhookDetail", {"detail": serializers.CharField()})
ACCEPTED = inline_serializer(
    "ReceiptWebhookResult",
    {
        "provider": serializers.CharField(),
        "events": serializers.IntegerField(),
        "matched": serializers.IntegerField(),
        "ignored": serializers.IntegerField(),
    },
)


class EmailTrackingWebhookView(APIView):
    # The provider's basic auth or signature is the credential, checked by anymail's validators.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        tags=["Delivery receipts"],
        operation_id="webhooks_email_tracking",
        summary="Email delivery receipts (provider webhook)",
        description=(
            "Give this URL to the email provider as its tracking (event) webhook, with the basic-auth "
            "credentials of `ANYMAIL_WEBHOOK_SECRET` in it: `https://user:pass@host/webhooks/email/postmark/"
            f"tracking/`. `provider` is one of {', '.join(sorted(TRACKING_VIEWS))}. The body is the provider's "
            "own payload, authenticated and read by django-anymail. Each event updates the receipt of the one "
            "delivery whose provider message id it names (`matched`); events naming no delivery of ours are "
            "acknowledged and `ignored`. Re-posting an event changes nothing."
        ),
        parameters=[
            OpenApiParameter(
                "provider", str, OpenApiParameter.PATH, enum=sorted(TRACKING_VIEWS), description="The email provider"
            )
        ],
        request=OpenApiTypes.OBJECT,
        responses={
            200: ACCEPTED,
            400: OpenApiResponse(DETAIL, description="Not a payload of this provider"),
            401: OpenApiResponse(DETAIL, description="Basic auth or signature missing or wrong"),
            403: OpenApiResponse(DETAIL, description="Receipts are off (no ANYMAIL_WEBHOOK_SECRET)"),
            404: OpenApiResponse(DETAIL, description="No tracking webhook for this provider"),
            503: OpenApiResponse(DETAIL, description="The provider's webhook settings are missing (try later)"),
        },
    )
    def post(self, request, provider):
        try:
            handled = tracking_webhook_handle(provider_slug=provider, request=request._request)
        except ReceiptRefused as exc:
            headers = {"WWW-Authenticate": 'Basic realm="receipts"'} if exc.status == 401 else None
            return Response({"detail": exc.message}, status=exc.status, headers=headers)
        return Response(
            {
                "provider": handled.provider,
                "events": handled.events,
                "matched": handled.recorded.matched,
                "ignored": handled.recorded.ignored,
            }
        )

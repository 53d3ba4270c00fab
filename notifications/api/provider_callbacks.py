"""Callbacks providers make to us: SMS delivery reports of Africa's Talking and AfroMessage.

Unauthenticated by nature (Africa's Talking signs nothing). What keeps a forged
report harmless: it can only touch the one row whose Africa's Talking message
id it names (ids are not guessable), nothing else (`notifications.delivery_reports`). When
`AFRICASTALKING["CALLBACK_TOKEN"]` is set, the callback URL registered in the
dashboard must carry it as `?token=...` and other calls are refused (403).

AfroMessage signs nothing either; we give it a callback URL per delivery,
signed by us (`notifications.callback_urls`), and refuse any other (403).
"""

from __future__ import annotations

import hmac

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from notifications.api.envelope import V1_ERROR, envelope_schema, ok
from notifications.api.errors import ApiError
from notifications.api.parsers import JSONParser
from notifications.api.throttling import RateLimits
from notifications.callback_urls import afromessage_callback_notification
from notifications.delivery_reports import (
    AFRICASTALKING_STATUSES,
    africastalking_report_apply,
    afromessage_report_apply,
)


class AfricasTalkingReportSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=255)
    status = serializers.ChoiceField(choices=sorted(AFRICASTALKING_STATUSES))
    phoneNumber = serializers.CharField(max_length=32, required=False, allow_blank=True)
    networkCode = serializers.CharField(max_length=16, required=False, allow_blank=True)
    failureReason = serializers.CharField(max_length=100, required=False, allow_blank=True)
    retryCount = serializers.CharField(max_length=16, required=False, allow_blank=True)


REPORT_RESULT = envelope_schema(
    "DeliveryReportResult",
    inline_serializer(
        "DeliveryReportData",
        {
            "matched": serializers.IntegerField(help_text="1 when the report named an SMS of ours, else 0"),
            "updated": serializers.IntegerField(help_text="1 when it moved that SMS from sent to failed, else 0"),
        },
    ),
)


class CallbackRateLimits(RateLimits):
    """A provider posts reports from a few addresses, one per message: its own budget, not the public `anon` one."""

    def limits(self, request, view) -> list[tuple[str, str]]:
        return [("provider_callback", self.get_ident(request))]


class ProviderCallbackView(APIView):
    """A provider calling back: none of our credentials (each view checks the provider's own), its own budget."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [CallbackRateLimits]


class AfricasTalkingDeliveryReportView(ProviderCallbackView):
    # Africa's Talking posts url-encoded forms; multipart and JSON are read too.
    parser_classes = [FormParser, MultiPartParser, JSONParser]

    @extend_schema(
        operation_id="africastalking_delivery_report",
        summary="Africa's Talking SMS delivery report (callback)",
        description=(
            "Register this URL under SMS > Callback URLs > Delivery Reports in the Africa's Talking dashboard "
            "(with `?token=` when AFRICASTALKING_CALLBACK_TOKEN is set). The report is recorded as a delivery "
            "receipt of the SMS whose Africa's Talking message id is `id` (and whose number is `phoneNumber`): "
            "Success is `delivered` (`delivery.delivered`); a final failure (Rejected, Failed, AbsentSubscriber, "
            "Expired) is `failed` and moves the sent SMS to failed with the reason (`delivery.failed`); a final "
            "failure for InvalidPhoneNumber, UserDoesNotExist or UserInBlackList is `bounced` and puts the number "
            "on the platform's suppression list (`delivery.bounced`). Reports for unknown ids are answered 200 "
            "and change nothing (`matched` 0); repeating a report changes nothing."
        ),
        auth=[],
        parameters=[OpenApiParameter("token", str, required=False, description="AFRICASTALKING_CALLBACK_TOKEN")],
        request={
            "application/x-www-form-urlencoded": AfricasTalkingReportSerializer,
            "application/json": AfricasTalkingReportSerializer,
        },
        responses={
            200: REPORT_RESULT,
            400: OpenApiResponse(V1_ERROR, description="Not a delivery report (id or status missing or invalid)"),
            403: OpenApiResponse(V1_ERROR, description="Wrong or missing `token`"),
        },
        tags=["callbacks"],
    )
    def post(self, request):
        expected = (getattr(settings, "AFRICASTALKING", {}) or {}).get("CALLBACK_TOKEN") or ""
        given = request.query_params.get("token", "")
        if expected and not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError("Forbidden", status=403, error="Wrong or missing callback token")
        data = request.data if isinstance(request.data, dict) else {}
        report = AfricasTalkingReportSerializer(data=data)
        if not report.is_valid():
            messages = [f"{field}: {' '.join(map(str, errors))}" for field, errors in report.errors.items()]
            raise ApiError("Invalid delivery report", status=400, error="; ".join(messages))
        values = report.validated_data
        applied = africastalking_report_apply(
            message_id=values["id"],
            status=values["status"],
            failure_reason=values.get("failureReason", ""),
            phone_number=values.get("phoneNumber", ""),
            network_code=values.get("networkCode", ""),
        )
        return ok("Delivery report received", {"matched": applied.matched, "updated": applied.updated})


class AfroMessageReportSerializer(serializers.Serializer):
    status = serializers.CharField(max_length=64)
    message_id = serializers.CharField(max_length=255, required=False, allow_blank=True)
    to = serializers.CharField(max_length=32, required=False, allow_blank=True)


class AfroMessageStatusReportView(ProviderCallbackView):
    # How AfroMessage calls its `callback` is not documented: a query string, a form and JSON are all read.
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        operation_id="afromessage_status_report",
        summary="AfroMessage SMS status report (callback)",
        description=(
            "Not registered by hand: when AFROMESSAGE_CALLBACK_BASE_URL is set, every single AfroMessage send "
            "passes this URL as `callback`, with `d`, the delivery's id signed by this service; any other `d` is "
            "refused. AfroMessage does not document the report itself: `status` is read from the query string, "
            "a form or a JSON body, with `message_id` and `to` when given (they must be the delivery's). "
            "Delivered / DELIVRD / success is `delivered` (`delivery.delivered`); failed / undelivered / expired / "
            "rejected is `failed` and moves the sent SMS to failed (`delivery.failed`); sent / pending / queued "
            "is `sent`; any other word is recorded as `unknown`. Repeating a report changes nothing."
        ),
        auth=[],
        parameters=[
            OpenApiParameter("d", str, required=True, description="The delivery, signed (from our callback URL)"),
            OpenApiParameter("status", str, required=False, description="The status, when sent in the query"),
            OpenApiParameter("message_id", str, required=False, description="AfroMessage's message id"),
            OpenApiParameter("to", str, required=False, description="The recipient's number"),
        ],
        request={
            "application/json": AfroMessageReportSerializer,
            "application/x-www-form-urlencoded": AfroMessageReportSerializer,
        },
        responses={
            200: REPORT_RESULT,
            400: OpenApiResponse(V1_ERROR, description="Not a status report (no `status`, or a field too long)"),
            403: OpenApiResponse(V1_ERROR, description="`d` missing or not signed by this service"),
        },
        tags=["callbacks"],
    )
    def post(self, request):
        return self._report(request)

    @extend_schema(exclude=True)  # the same report, in the query string
    def get(self, request):
        return self._report(request)

    def _report(self, request):
        notification_id = afromessage_callback_notification(token=request.query_params.get("d", ""))
        if notification_id is None:
            raise ApiError("Forbidden", status=403, error="Not a callback URL of this service")
        body = request.data if request.method == "POST" else {}
        if not isinstance(body, dict):
            raise ApiError("Invalid status report", status=400, error="The body is not an object")
        fields = {k: v for k, v in request.query_params.items() if k != "d"}
        fields.update({k: body[k] for k in ("status", "message_id", "to") if k in body})
        report = AfroMessageReportSerializer(data=fields)
        if not report.is_valid():
            messages = [f"{field}: {' '.join(map(str, errors))}" for field, errors in report.errors.items()]
            raise ApiError("Invalid status report", status=400, error="; ".join(messages))
        values = report.validated_data
        applied = afromessage_report_apply(
            notification_id=notification_id,
            status=values["status"],
            message_id=values.get("message_id", ""),
            phone=values.get("to", ""),
        )
        return ok("Status report received", {"matched": applied.matched, "updated": applied.updated})

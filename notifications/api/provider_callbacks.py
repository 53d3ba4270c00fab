"""Callbacks providers make to us: Africa's Talking's SMS delivery reports.

Unauthenticated by nature (Africa's Talking signs nothing). What keeps a forged
report harmless: it can only touch the one row whose Africa's Talking message
id it names (ids are not guessable), nothing else (`notifications.delivery_reports`). When
`AFRICASTALKING["CALLBACK_TOKEN"]` is set, the callback URL registered in the
dashboard must carry it as `?token=...` and other calls are refused (403).
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
from notifications.delivery_reports import AFRICASTALKING_STATUSES, africastalking_report_apply


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


class AfricasTalkingDeliveryReportView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [CallbackRateLimits]
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

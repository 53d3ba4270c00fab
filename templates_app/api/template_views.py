"""The templates surface under `/api/notification/v1/` (IBL §7.2): templates, channels, SPAs.

Events are in `event_views`, preferences and the unsubscribe page in `preference_views`;
the mentors and learner-activity endpoints live in `templates_app.automation.api`.

Every view declares what it needs on the platform its path names
(`notifications.api.permissions`: unknown or foreign platforms are a 404), then
starts from `request.platform`, calls one service and shapes the answer.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.api.errors import ApiError
from notifications.api.permissions import requires
from notifications.models import Platform
from notifications.permissions import PLATFORM_ADMIN
from notifications.pipeline import eligibility
from templates_app import defaults, selectors
from templates_app.api import template_serializers as s
from templates_app.api.common import DRF_ERROR, FIELD_ERRORS, TAG_TEMPLATES, _validation
from templates_app.messages import FieldRenderError
from templates_app.services import templates as template_services

LIST_KEY = "Ibl.Notifications/Template/list"
WRITE_KEY = "Ibl.Notifications/Template/write"
TEMPLATE_ADMINS = "Only platform admins can manage notification templates."


# Templates: platform admins; with RBAC on, the list grant to read and the write grant to change.
TemplateAdmin = requires(PLATFORM_ADMIN, rbac=LIST_KEY, rbac_write=WRITE_KEY, admin_message=TEMPLATE_ADMINS)


# Tests and previews send or render without changing anything: the list grant is enough.
TemplateReader = requires(PLATFORM_ADMIN, rbac=LIST_KEY, admin_message=TEMPLATE_ADMINS)


def _template_or_404(platform: Platform, notification_type: str) -> selectors.EffectiveTemplate:
    effective = selectors.template_for_type(platform=platform, notification_type=notification_type)
    if effective is None:
        raise ApiError("Not found.", status=404)
    return effective


class TemplateListView(APIView):
    permission_classes = [TemplateAdmin]

    @extend_schema(
        tags=TAG_TEMPLATES,
        summary="List all templates",
        description="Every template visible to the platform: inherited defaults and its own copies, "
        "then its custom types.",
        responses={200: s.TemplateSummaryOut(many=True), 403: DRF_ERROR, 404: DRF_ERROR},
    )
    def get(self, request, platform_key):
        platform = request.platform
        return Response([s.template_summary(e) for e in selectors.templates_for_platform(platform=platform)])

    @extend_schema(
        tags=TAG_TEMPLATES,
        summary="Create a custom notification type",
        description="A platform-defined type with its own template; it is listed after the system types "
        "and its id carries a `custom_` prefix.",
        request=s.CustomTypeIn,
        responses={201: s.TemplatePatchOut, 400: FIELD_ERRORS, 403: DRF_ERROR, 404: DRF_ERROR},
    )
    def post(self, request, platform_key):
        platform = request.platform
        ser = s.CustomTypeIn(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            effective, warnings = template_services.custom_type_create(platform=platform, data=ser.validated_data)
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        return Response({**s.template_detail(effective), "warnings": warnings}, status=201)


class TemplateDetailView(APIView):
    permission_classes = [TemplateAdmin]

    @extend_schema(
        tags=TAG_TEMPLATES,
        summary="Get template detail",
        responses={200: s.TemplateDetailOut, 403: DRF_ERROR, 404: DRF_ERROR},
    )
    def get(self, request, platform_key, notification_type):
        platform = request.platform
        return Response(s.template_detail(_template_or_404(platform, notification_type)))

    @extend_schema(
        tags=TAG_TEMPLATES,
        summary="Customize a template (creates your copy on first edit)",
        description="Only fields present are changed. Template fields are compiled: a syntax error is a 400 "
        "naming the field and line; variables the type does not provide come back as `warnings`. "
        "`message_body`, `short_message_body` and `email_html_template` are read-only for "
        "PROACTIVE_LEARNER_NOTIFICATION, POLICY_ASSIGNMENT and HUMAN_SUPPORT_NOTIFICATION.",
        request=s.TemplatePatchIn,
        responses={200: s.TemplatePatchOut, 400: FIELD_ERRORS, 403: DRF_ERROR, 404: DRF_ERROR},
    )
    def patch(self, request, platform_key, notification_type):
        platform = request.platform
        _template_or_404(platform, notification_type)
        ser = s.TemplatePatchIn(data=request.data)
        ser.is_valid(raise_exception=True)
        changes = dict(ser.validated_data)
        acknowledge = changes.pop("acknowledge_default_change", False)
        try:
            effective, warnings = template_services.template_customize(
                platform=platform, notification_type=notification_type, changes=changes, acknowledge_default=acknowledge
            )
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        except template_services.TemplateNotFound:
            raise ApiError("Not found.", status=404) from None
        return Response({**s.template_detail(effective), "warnings": warnings})

    @extend_schema(
        tags=TAG_TEMPLATES,
        summary="Delete a custom notification type",
        responses={200: s.ResetOut, 400: FIELD_ERRORS, 403: DRF_ERROR, 404: DRF_ERROR},
    )
    def delete(self, request, platform_key, notification_type):
        platform = request.platform
        try:
            template_services.custom_type_delete(platform=platform, notification_type=notification_type)
        except template_services.TemplateNotFound:
            raise ApiError("Not found.", status=404) from None
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        return Response({"message": "Custom notification type deleted.", "deleted": True})


class TemplateToggleView(APIView):
    permission_classes = [TemplateAdmin]

    @extend_schema(
        tags=TAG_TEMPLATES,
        summary="Enable or disable a notification type",
        request=s.ToggleIn,
        responses={200: s.ToggleOut, 400: FIELD_ERRORS, 403: DRF_ERROR, 404: DRF_ERROR},
    )
    def patch(self, request, platform_key, notification_type):
        platform = request.platform
        _template_or_404(platform, notification_type)
        ser = s.ToggleIn(data=request.data)
        ser.is_valid(raise_exception=True)
        enabled = template_services.template_toggle(
            platform=platform,
            notification_type=notification_type,
            enabled=ser.validated_data["allow_notification"],
            user=request.user,
        )
        return Response(
            {
                "type": notification_type,
                "is_enabled": enabled,
                "platform": platform.key,
                "message": f"Notification {'enabled' if enabled else 'disabled'} successfully",
            }
        )


class TemplateResetView(APIView):
    permission_classes = [TemplateAdmin]

    @extend_schema(
        tags=TAG_TEMPLATES,
        summary="Reset to default",
        description="Deletes the platform's copy; the toggle state is not affected.",
        request=None,
        responses={200: s.ResetOut, 400: FIELD_ERRORS, 403: DRF_ERROR, 404: DRF_ERROR},
    )
    def post(self, request, platform_key, notification_type):
        platform = request.platform
        try:
            deleted = template_services.template_reset(platform=platform, notification_type=notification_type)
        except template_services.TemplateNotFound:
            raise ApiError("Not found.", status=404) from None
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        if deleted:
            return Response(
                {"message": "Template reset to default. Platform will now use main template.", "deleted": True}
            )
        return Response({"message": "Template was already using default from main platform.", "deleted": False})


class TemplateTestView(APIView):
    permission_classes = [TemplateReader]

    throttle_scope = "template_test"

    @extend_schema(
        tags=TAG_TEMPLATES,
        summary="Send a test notification",
        description="Renders the template with `username`, `site_name`, `course_name` and `platform_key` "
        "(overridden by `context`) and emails it to the requesting admin.",
        request=s.TestIn,
        responses={200: s.TestOut, 400: s.TestOut, 403: DRF_ERROR, 404: DRF_ERROR, 500: s.TestOut},
    )
    def post(self, request, platform_key, notification_type):
        platform = request.platform
        _template_or_404(platform, notification_type)
        ser = s.TestIn(data=request.data)
        ser.is_valid(raise_exception=True)
        if not request.user.email:
            raise ApiError(
                "No email",
                status=400,
                body={"success": False, "message": "Your account has no email address to send the test to."},
            )
        try:
            sent = template_services.template_test_send(
                platform=platform,
                notification_type=notification_type,
                user=request.user,
                context=ser.validated_data["context"],
            )
        except FieldRenderError as exc:
            raise ApiError(
                "Render failed", status=400, body={"success": False, "message": f"Template failed to render: {exc}"}
            ) from None
        if not sent:
            return Response(
                {"success": False, "message": "Failed to send test notification. Check email configuration."},
                status=500,
            )
        email = request.user.email
        return Response(
            {"success": True, "message": f"Test notification sent successfully to {email}", "recipient": email}
        )


class TemplatePreviewView(APIView):
    permission_classes = [TemplateReader]

    @extend_schema(
        tags=TAG_TEMPLATES,
        summary="Preview a template without sending",
        description="Renders each channel's message for a sample or given context. `template` previews "
        "unsaved edits. Nothing is sent or stored.",
        request=s.PreviewIn,
        responses={200: s.PreviewOut, 400: FIELD_ERRORS, 403: DRF_ERROR, 404: DRF_ERROR},
    )
    def post(self, request, platform_key, notification_type):
        platform = request.platform
        effective = _template_or_404(platform, notification_type)
        ser = s.PreviewIn(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        warnings: list[dict] = []
        draft = data.get("template") or {}
        unknown = sorted(set(draft) - set(defaults.TEMPLATE_FIELDS))
        if unknown:
            raise serializers.ValidationError({"template": [f"Not template fields: {', '.join(unknown)}."]})
        if draft:
            errors: dict[str, list[str]] = {}
            cleaned, warnings = template_services.template_fields_check(
                draft, known=defaults.known_variables(effective.type, effective.available_context), errors=errors
            )
            if errors:
                raise serializers.ValidationError(errors)
            for field, value in cleaned.items():
                setattr(effective.template, field, value)  # in memory only
        context = dict(data["context"])
        td = effective.type_default
        if data["use_sample_context"] and td is not None:
            context = {**td.sample_context, **context}
        try:
            channels = template_services.template_preview(
                platform=platform,
                effective=effective,
                context=context,
                user=request.user,
                channels=data.get("channels"),
            )
        except FieldRenderError as exc:
            raise serializers.ValidationError({exc.field: [str(exc)]}) from None
        return Response({"type": effective.type, "channels": channels, "warnings": warnings})


class ChannelListView(APIView):
    permission_classes = [TemplateReader]

    @extend_schema(
        tags=TAG_TEMPLATES, summary="Delivery channels and their ids", responses={200: s.ChannelOut(many=True)}
    )
    def get(self, request, platform_key):
        platform = request.platform
        channels = selectors.channel_records()
        # The channels the pipeline would deliver over on this platform (push may be switched off).
        allowed = eligibility.platform_channels(platform=platform, channels=[c.name for c in channels])
        channels = [c for c in channels if c.name in allowed]
        return Response([{"id": c.pk, "name": c.name} for c in channels])


class SpaListView(APIView):
    permission_classes = [TemplateReader]

    @extend_schema(tags=TAG_TEMPLATES, summary="SPAs and their ids", responses={200: s.SpaOut(many=True)})
    def get(self, request, platform_key):
        return Response([{"id": x.pk, "name": x.name, "description": x.description} for x in selectors.spa_records()])

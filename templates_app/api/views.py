"""The templates surface under `/api/notification/v1/`: IBL §7.2, plus events and preferences.

The mentors and learner-activity endpoints live in `templates_app.automation.api`.

Every view declares what it needs on the platform its path names
(`notifications.api.permissions`: unknown or foreign platforms are a 404), then
starts from `request.platform`, calls one service and shapes the answer.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import HttpResponse
from django.utils.html import escape
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.api.errors import ApiError
from notifications.api.permissions import MemberOrPlatformAdmin, PlatformPermission, requires
from notifications.models import Channel, Platform
from notifications.permissions import PLATFORM_ADMIN, request_permissions
from notifications.pipeline import eligibility
from templates_app import defaults, selectors
from templates_app.api import serializers as s
from templates_app.automation import events as event_services
from templates_app.messages import FieldRenderError
from templates_app.models import ALL_TYPES
from templates_app.services import preferences as preference_services
from templates_app.services import templates as template_services

LIST_KEY = "Ibl.Notifications/Template/list"
WRITE_KEY = "Ibl.Notifications/Template/write"
EVENT_KEY = "Ibl.Notifications/Event/send"
TAG_TEMPLATES = ["notification templates"]
TAG_EVENTS = ["notification events"]
TAG_PREFS = ["notification preferences"]

DRF_ERROR = inline_serializer("IblError", {"detail": serializers.CharField()})
FIELD_ERRORS = OpenApiResponse(description="Validation errors, keyed by field: `{field: [message, ...]}`")


TEMPLATE_ADMINS = "Only platform admins can manage notification templates."
# Templates: platform admins; with RBAC on, the list grant to read and the write grant to change.
TemplateAdmin = requires(PLATFORM_ADMIN, rbac=LIST_KEY, rbac_write=WRITE_KEY, admin_message=TEMPLATE_ADMINS)
# Tests and previews send or render without changing anything: the list grant is enough.
TemplateReader = requires(PLATFORM_ADMIN, rbac=LIST_KEY, admin_message=TEMPLATE_ADMINS)


class EventSender(PlatformPermission):
    """Members holding the event key (the platform's own systems); without RBAC, platform admins too."""

    def missing(self, request, held):
        if EVENT_KEY in held or (PLATFORM_ADMIN in held and not request.platform.rbac_enabled):
            return None
        return EVENT_KEY

    def message_for(self, missing):
        return f"Only platform admins or holders of {EVENT_KEY} can post events."


def _validation(exc: DjangoValidationError) -> serializers.ValidationError:
    if hasattr(exc, "message_dict"):
        return serializers.ValidationError(exc.message_dict)
    return serializers.ValidationError({"detail": exc.messages})


def _template_or_404(platform: Platform, notification_type: str) -> selectors.EffectiveTemplate:
    effective = selectors.template_for_type(platform=platform, notification_type=notification_type)
    if effective is None:
        raise ApiError("Not found.", status=404)
    return effective


# --- IBL §7.2 -----------------------------------------------------------------------------


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


# --- automatic notifications --------------------------------------------------------------


class EventView(APIView):
    permission_classes = [EventSender]

    @extend_schema(
        tags=TAG_EVENTS,
        summary="Report a platform event (automatic notification)",
        description="Checks that the type is enabled for the platform, which channels its template allows, "
        "which template applies (the platform's copy or the default) and who the recipients are; renders the "
        "message for each recipient and delivers it. A disabled type is accepted and reported as `skipped`. "
        "`recipients` take usernames, user ids, emails, or `{username|user_id|email, context}` objects; "
        "HUMAN_SUPPORT_NOTIFICATION adds the recipients its configuration names. Re-posting an `event_id` "
        "never delivers twice; re-posting it with a different payload is a 409.",
        request=s.EventIn,
        responses={200: s.EventOut, 400: FIELD_ERRORS, 403: DRF_ERROR, 404: DRF_ERROR, 409: DRF_ERROR},
    )
    def post(self, request, org):
        platform = request.platform
        ser = s.EventIn(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        try:
            result = event_services.event_notify(
                platform=platform,
                notification_type=data["type"],
                recipients=data["recipients"],
                context=data["context"],
                channels=data.get("channels"),
                event_id=data.get("event_id"),
                user=request.user,
            )
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        except event_services.EventConflict:
            raise ApiError(
                "This event_id was already used with a different payload.", status=409, code="conflict"
            ) from None
        return Response(result)


# --- preferences ------------------------------------------------------------------------


def _preference_target(request, username: str):
    """The user whose preferences the path names: yourself, or anyone on your platform if you administer it."""
    platform = request.platform
    if request.user.username == username:
        return platform, request.user
    if PLATFORM_ADMIN in request_permissions(request, platform):
        user = (
            get_user_model()
            .objects.filter(username=username, memberships__platform=platform, memberships__is_active=True)
            .first()
        )
        if user is not None:
            return platform, user
    raise ApiError("Not found.", status=404)


def _preferences_out(platform: Platform, user) -> dict:
    rows = selectors.preferences_for(platform=platform, user=user)
    channels = list(Channel.values)
    digests = preference_services.digest_choices(platform=platform, user=user)
    items = []
    for e in selectors.templates_for_platform(platform=platform):
        items.append(
            {
                "type": e.type,
                "name": e.template.name,
                "is_critical": e.is_critical,
                "is_enabled_on_platform": e.is_enabled,
                "channels": {
                    c: selectors.effective_choice(rows, notification_type=e.type, channel=c) for c in channels
                },
                "digest": digests.get(e.type),
            }
        )
    all_types = {c: selectors.effective_choice(rows, notification_type=ALL_TYPES, channel=c) for c in channels}
    return {
        "username": user.username,
        "platform": platform.key,
        **preference_services.delivery_schedule_of(platform=platform, user=user),
        "channels": channels,
        "all_types": all_types,
        "preferences": items,
    }


class PreferencesView(APIView):
    permission_classes = [MemberOrPlatformAdmin]

    @extend_schema(
        tags=TAG_PREFS,
        summary="A user's notification preferences",
        description="Per type and channel: whether this user receives it. Critical types are always on. "
        "Readable by the user and by platform admins.",
        responses={200: s.PreferencesOut, 404: DRF_ERROR},
    )
    def get(self, request, org, user_id):
        platform, user = _preference_target(request, user_id)
        return Response(_preferences_out(platform, user))

    @extend_schema(
        tags=TAG_PREFS,
        summary="Change notification preferences",
        description='`{"preferences": [{"type": "USER_NOTIF_USER_INACTIVITY", "channel": "email", '
        '"enabled": false}]}`. Leave out `channel` for every channel; `"type": "*"` covers every type that '
        "is not critical. Critical types cannot be turned off (400). "
        '`"time_zone": "Africa/Addis_Ababa"` sets the user\'s IANA zone; `"quiet_hours": {"start": "22:00", '
        '"end": "07:00"}` their quiet hours on this platform (`null`: the platform\'s default). An unknown '
        "zone or a time not in HH:MM is a 400 and changes nothing. `cadences` "
        '(`[{"type": "USER_NOTIF_LEARNER_PROGRESS", "cadence": "weekly"}]`) set the user\'s own digest cadence '
        "of a type the platform digests, among those its rule offers (`immediate`, `hourly`, `daily`, "
        "`weekly`; null follows the platform again).",
        request=s.PreferencesIn,
        responses={200: s.PreferencesOut, 400: FIELD_ERRORS, 404: DRF_ERROR},
    )
    def patch(self, request, org, user_id):
        platform, user = _preference_target(request, user_id)
        ser = s.PreferencesIn(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        try:
            # One transaction: a refused change leaves the rest of the same request unwritten too.
            with transaction.atomic():
                if data.get("preferences"):
                    preference_services.preferences_update(
                        platform=platform, user=user, changes=[dict(c) for c in data["preferences"]]
                    )
                if data.get("cadences"):
                    preference_services.cadences_update(
                        platform=platform, user=user, changes=[dict(c) for c in data["cadences"]]
                    )
                preference_services.delivery_schedule_update(platform=platform, user=user, changes=data)
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        return Response(_preferences_out(platform, user))

    @extend_schema(
        tags=TAG_PREFS,
        summary="Reset preferences to receive everything",
        responses={200: s.PreferencesOut, 404: DRF_ERROR},
    )
    def delete(self, request, org, user_id):
        platform, user = _preference_target(request, user_id)
        preference_services.preferences_reset(platform=platform, user=user)
        return Response(_preferences_out(platform, user))


_UNSUBSCRIBE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;max-width:520px;margin:48px auto;color:#1f2937">
<h1 style="font-size:22px">{title}</h1><p>{text}</p>{form}</body></html>"""


def _page(title: str, text: str, form: str = "", status: int = 200) -> HttpResponse:
    return HttpResponse(_UNSUBSCRIBE_PAGE.format(title=title, text=text, form=form), status=status)


class UnsubscribeView(APIView):
    """The `unsubscribe_url` of non-critical emails: GET asks, POST (also RFC 8058 one-click) unsubscribes.

    The signed token is the credential, so there is no login; pages are HTML
    because a person clicking a link in an email reads them.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def _type_name(self, token: str) -> tuple[str, str] | None:
        try:
            data = preference_services.unsubscribe_read(token)
        except preference_services.BadUnsubscribeToken:
            return None
        type_ = str(data.get("t", ""))
        return type_, defaults.BY_TYPE[type_].name if type_ in defaults.BY_TYPE else type_

    @extend_schema(
        tags=TAG_PREFS, summary="Unsubscribe page", responses={(200, "text/html"): str, (404, "text/html"): str}
    )
    def get(self, request, token):
        found = self._type_name(token)
        if found is None:
            return _page("Link not valid", "This unsubscribe link is invalid or has expired.", status=404)
        form = '<form method="post"><button type="submit" style="padding:10px 18px">Unsubscribe</button></form>'
        return _page("Unsubscribe", f"Stop receiving “{escape(found[1])}” notifications?", form)

    @extend_schema(
        tags=TAG_PREFS,
        summary="Unsubscribe (one click)",
        request=None,
        responses={(200, "text/html"): str, (404, "text/html"): str},
    )
    def post(self, request, token):
        found = self._type_name(token)
        try:
            if found is None:
                raise preference_services.BadUnsubscribeToken(token)
            with transaction.atomic():
                preference_services.unsubscribe_apply(token)
        except (preference_services.BadUnsubscribeToken, DjangoValidationError):
            return _page("Link not valid", "This unsubscribe link is invalid or has expired.", status=404)
        return _page(
            "You are unsubscribed",
            f"You will no longer receive “{escape(found[1])}” notifications. You can turn them back on in "
            "your notification preferences.",
        )

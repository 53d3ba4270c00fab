"""A user's notification preferences, and the unsubscribe page linked from non-critical emails."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import HttpResponse
from django.utils.html import escape
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.api.errors import ApiError
from notifications.api.permissions import MemberOrPlatformAdmin
from notifications.models import Channel, Platform
from notifications.permissions import PLATFORM_ADMIN, request_permissions
from templates_app import defaults, selectors
from templates_app.api import preference_serializers as s
from templates_app.api.common import DRF_ERROR, FIELD_ERRORS, TAG_PREFS, _validation
from templates_app.models import ALL_TYPES
from templates_app.services import preferences as preference_services


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

"""Who may act on what under `/api/notification/v1/` (IBL §3).

The views' permission classes (`notifications.api.permissions`) have already
resolved the path's platform (`request.platform`; one the caller does not
belong to is a 404) and checked the RBAC grants (`Ibl.Notifications/...`,
demanded when the platform enables RBAC). What is left is whose data a path
names:

- A user acts on their own notifications and devices; a platform admin of
  that platform on any member's. Anyone else gets the same 404 as for a user
  who does not exist, so the API never confirms who is on a platform.
"""

from __future__ import annotations

from rest_framework import serializers

from notifications import selectors
from notifications.api.errors import ApiError
from notifications.permissions import PLATFORM_ADMIN, request_permissions

LIST = "Ibl.Notifications/Notification/list"
WRITE = "Ibl.Notifications/Notification/write"
DELETE = "Ibl.Notifications/Notification/delete"
SMTP_ACTION = "Ibl.Notifications/SMTP/action"


def acting_on(request, username: str):
    """(platform, user) for a path naming a user: yourself, or (platform admins) any member; else 404."""
    platform = request.platform
    caller = request.user
    if username == caller.username:
        return platform, caller
    if PLATFORM_ADMIN in request_permissions(request, platform):
        owner = selectors.platform_member(platform=platform, username=username)
        if owner is not None:
            return platform, owner
    raise ApiError("Not found.", status=404)


def messages_of(errors) -> list[str]:
    """Validation errors as 'field: message' strings, in order."""
    if isinstance(errors, dict):
        out = []
        for field, value in errors.items():
            for msg in messages_of(value):
                out.append(msg if field in ("non_field_errors", "detail") else f"{field}: {msg}")
        return out
    if isinstance(errors, (list, tuple)):
        return [m for item in errors for m in messages_of(item)]
    return [str(errors)]


def validated(serializer_class, data, *, extra=None, **kwargs) -> dict:
    """Run a serializer; on errors a 400 with DRF's field errors.

    `extra` maps the endpoint's own message key ("message", "error") to the
    first error, for endpoints whose documented answers carry one, so their
    clients find an explanation where they look for it.
    """
    serializer = serializer_class(data=data, **kwargs)
    if serializer.is_valid():
        return serializer.validated_data
    errors = serializer.errors
    if not extra:
        raise serializers.ValidationError(errors)
    first = messages_of(errors)[0]
    body = {key: (first if value is None else value) for key, value in extra.items()}
    body.update({k: v for k, v in errors.items()})
    raise ApiError(first, status=400, body=body)

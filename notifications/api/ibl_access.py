"""Who may act on what under `/api/notification/v1/` (IBL §3).

- The platform in the path must be one the caller belongs to (else 404).
- A user acts on their own notifications and devices; a platform admin of
  that platform on any member's. Anyone else gets the same 404 as for a user
  who does not exist, so the API never confirms who is on a platform.
- When the platform enables RBAC, the caller must also hold the resource
  grant (`Ibl.Notifications/Notification/list`, ...): 403 without it.
"""

from __future__ import annotations

from rest_framework import serializers

from notifications import selectors
from notifications.api.errors import ApiError
from notifications.models import Platform
from notifications.permissions import has_key
from notifications.tenancy import is_platform_admin, platform_from_path

LIST = "Ibl.Notifications/Notification/list"
WRITE = "Ibl.Notifications/Notification/write"
DELETE = "Ibl.Notifications/Notification/delete"
SMTP_ACTION = "Ibl.Notifications/SMTP/action"


def rbac_require(request, platform: Platform, key: str) -> None:
    if platform.rbac_enabled and not has_key(request.user, key):
        raise ApiError(f"Missing permission: {key}", status=403)


def acting_on(request, org: str, username: str, *, grant: str | None = None):
    """(platform, user) for a path naming another user, or a 404/403."""
    platform = platform_from_path(request, org)
    caller = request.user
    if username == caller.username:
        owner = caller
    elif is_platform_admin(caller, platform):
        owner = selectors.platform_member(platform=platform, username=username)
        if owner is None:
            raise ApiError("Not found.", status=404)
    else:
        raise ApiError("Not found.", status=404)
    if grant:
        rbac_require(request, platform, grant)
    return platform, owner


def platform_for_caller(request, org: str, *, grant: str | None = None) -> Platform:
    platform = platform_from_path(request, org)
    if grant:
        rbac_require(request, platform, grant)
    return platform


def platform_admin(request, platform_key: str, *, grant: str | None = None) -> Platform:
    """The path's platform when the caller administers it: 404 for outsiders, 403 for members."""
    platform = platform_from_path(request, platform_key)
    if not is_platform_admin(request.user, platform):
        raise ApiError("You must be an admin of this platform.", status=403)
    if grant:
        rbac_require(request, platform, grant)
    return platform


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

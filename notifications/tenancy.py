"""Which platform a request acts on.

A request acts on exactly one platform, resolved once (`request_platform`,
stored as `request.platform`): the one an IBL path names (`{org}` /
`{platform_key}`), or on `/alerts` and `/api/v1/` the caller's only membership,
or the one the `X-Platform` header names when they belong to several. A
platform the caller does not belong to is a 404, like one that does not exist.
What the caller may do there is `notifications.permissions.platform_permissions`.
"""

from __future__ import annotations

from notifications.errors import InvalidInput, NotFound, PermissionDenied
from notifications.models import Membership, Platform
from notifications.permissions import (
    MEMBER,
    PLATFORM_ADMIN,
    platform_permissions,
    request_credentials,
    request_permissions,
)

PLATFORM_HEADER = "HTTP_X_PLATFORM"
# URL keywords that name the platform on the IBL surface.
PATH_PLATFORM_KWARGS = ("org", "platform_key")


def is_platform_admin(user, platform: Platform) -> bool:
    """Does `user` administer `platform` (an active membership with `is_platform_admin`, or a superuser)?"""
    return PLATFORM_ADMIN in platform_permissions(user, platform)


def administered_platforms(user):
    """The active platforms `user` administers: every one for a superuser.

    The one answer to "which tenants may this staff user manage", used by the
    Django admin's scoping and its compose screen.
    """
    qs = Platform.objects.filter(is_active=True)
    if user.is_superuser:
        return qs
    if not user.is_authenticated or not user.is_active:
        return qs.none()
    admin_of = Membership.objects.filter(user=user, is_platform_admin=True, is_active=True).values("platform_id")
    return qs.filter(pk__in=admin_of)


def is_member(user, platform: Platform) -> bool:
    """Is `user` an active member of `platform`? Superusers count as members of every platform."""
    if user.is_superuser:
        return True
    return Membership.objects.filter(user=user, platform=platform, is_active=True).exists()


def platform_for_request(request) -> Platform:
    """The caller's platform on surfaces whose paths do not name one.

    Their only membership, or the one the `X-Platform` header names when they
    belong to several.
    """
    cached = getattr(request, "_notify_platform", None)
    if cached is not None:
        return cached
    user = request.user
    wanted = request.META.get(PLATFORM_HEADER, "").strip()
    scoped_to = getattr(getattr(request, "auth", None), "platform", None)
    if scoped_to is not None:
        # A scoped token (an inbox token) acts on its own platform only.
        if (
            not scoped_to.is_active
            or (wanted and wanted != scoped_to.key)
            or MEMBER not in request_permissions(request, scoped_to)
        ):
            raise NotFound("Platform not found", detail="This token belongs to another platform")
        platform = scoped_to
    elif wanted:
        platform = _platform_by_key(request, wanted[:100])
        if platform is None or MEMBER not in request_permissions(request, platform):
            raise NotFound("Platform not found", detail=f"No platform '{wanted[:100]}' for this user")
    else:
        creds = request_credentials(request)
        if creds is not None:
            members = list(creds.platforms.values())[:2]
        else:
            keys = list(
                Membership.objects.filter(user=user, is_active=True, platform__is_active=True).values_list(
                    "platform", flat=True
                )[:2]
            )
            members = keys if len(keys) != 1 else [Platform.objects.get(pk=keys[0])]
        if not members:
            raise PermissionDenied("No platform", detail="This user belongs to no platform")
        if len(members) > 1:
            raise InvalidInput(
                "Platform is ambiguous",
                detail="This user belongs to several platforms; name one in the X-Platform header",
            )
        platform = members[0]
    request._notify_platform = platform
    return platform


def _platform_by_key(request, key: str) -> Platform | None:
    """An active platform by key: the caller's own from their credentials, any other from the database."""
    creds = request_credentials(request)
    if creds is not None:
        platform = creds.platform_by_key(key)
        if platform is not None or not request.user.is_superuser:
            return platform  # a member of none by that key: not found, as before, without a query
    return Platform.objects.filter(key=key, is_active=True).first()


def platform_from_path(request, key: str) -> Platform:
    """The platform an IBL path names; unknown or foreign platforms are a 404."""
    cached = getattr(request, "_notify_platform", None)
    if cached is not None and cached.key == key:
        return cached
    platform = _platform_by_key(request, key[:100])
    if platform is None or MEMBER not in request_permissions(request, platform):
        raise NotFound("Not found.")
    request._notify_platform = platform
    return platform


def request_platform(request, view=None) -> Platform:
    """The request's platform, resolved once: the path's when it names one, else the caller's."""
    kwargs = getattr(view, "kwargs", None) or {}
    for name in PATH_PLATFORM_KWARGS:
        if name in kwargs:
            platform = platform_from_path(request, kwargs[name])
            break
    else:
        platform = platform_for_request(request)
    request.platform = platform
    return platform

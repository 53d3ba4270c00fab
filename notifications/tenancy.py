"""Which platform a request acts on, and who administers it."""

from __future__ import annotations

from notifications.api.errors import ApiError
from notifications.models import Membership, Platform

PLATFORM_HEADER = "HTTP_X_PLATFORM"


def is_platform_admin(user, platform: Platform) -> bool:
    if user.is_superuser:
        return True
    return Membership.objects.filter(user=user, platform=platform, is_platform_admin=True, is_active=True).exists()


def is_member(user, platform: Platform) -> bool:
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
        if not scoped_to.is_active or (wanted and wanted != scoped_to.key) or not is_member(user, scoped_to):
            raise ApiError("Platform not found", status=404, error="This token belongs to another platform")
        platform = scoped_to
    elif wanted:
        platform = Platform.objects.filter(key=wanted, is_active=True).first()
        if platform is None or not is_member(user, platform):
            raise ApiError("Platform not found", status=404, error=f"No platform '{wanted}' for this user")
    else:
        keys = list(
            Membership.objects.filter(user=user, is_active=True, platform__is_active=True)
            .select_related("platform")
            .values_list("platform", flat=True)[:2]
        )
        if not keys:
            raise ApiError("No platform", status=403, error="This user belongs to no platform")
        if len(keys) > 1:
            raise ApiError(
                "Platform is ambiguous",
                status=400,
                error="This user belongs to several platforms; name one in the X-Platform header",
            )
        platform = Platform.objects.get(pk=keys[0])
    request._notify_platform = platform
    return platform


def platform_from_path(request, key: str) -> Platform:
    """The platform an IBL path names; unknown or foreign platforms are a 404."""
    platform = Platform.objects.filter(key=key, is_active=True).first()
    if platform is None or not is_member(request.user, platform):
        raise ApiError("Not found.", status=404)
    return platform

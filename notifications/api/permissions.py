"""The DRF permission classes every API view of the three surfaces uses.

One question, asked one way: "may this user do <key> on this platform". The
class resolves the request's platform once (`request.platform`, see
`notifications.tenancy.request_platform`), takes the caller's keys on it from
`notifications.permissions.request_permissions` and checks the keys the view
declares. Anonymous callers get 401, callers outside the platform 404 (as if
it did not exist), members without a key 403.

    permission_classes = [requires("notifications.bulk_sms")]
    permission_classes = [PlatformAdmin]                      # administers the platform
    permission_classes = [requires(PLATFORM_ADMIN, rbac=LIST, rbac_write=WRITE)]

`rbac` / `rbac_write` are the IBL resource grants, demanded only on platforms
that enable RBAC (`Platform.rbac_enabled`): `rbac` for reads (every method when
`rbac_write` is not given), `rbac_write` for writes.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from notifications.api.errors import ApiError
from notifications.permissions import MEMBER, PLATFORM_ADMIN, REGISTRY, request_permissions
from notifications.tenancy import request_platform

_PSEUDO_KEYS = {MEMBER, PLATFORM_ADMIN}


class PlatformPermission(BasePermission):
    """Base of the family: the caller must hold every key of `keys` on the request's platform."""

    keys: tuple[str, ...] = (MEMBER,)
    rbac: str | None = None
    rbac_write: str | None = None
    # The URL keyword naming a user whose data the path reaches: only that user
    # and the platform's admins get further; anyone else a 404 (before any 403,
    # so the answer never tells who is on the platform).
    owner_kwarg: str | None = None
    # What a caller missing PLATFORM_ADMIN is told (the views' documented sentences).
    admin_message: str = "You must be an admin of this platform."

    def needed(self, request) -> list[str]:
        keys = list(self.keys)
        platform = request.platform
        if platform.rbac_enabled:
            write = request.method not in SAFE_METHODS
            grant = self.rbac_write if write and self.rbac_write else self.rbac
            if grant:
                keys.append(grant)
        return keys

    def missing(self, request, held: frozenset[str]) -> str | None:
        """The first needed key the caller does not hold, or None."""
        return next((key for key in self.needed(request) if key not in held), None)

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False  # DRF answers 401 with the authenticator's challenge
        platform = request_platform(request, view)  # 404 / 400 / 403 in the surface's format
        held = request_permissions(request, platform)
        if self.owner_kwarg:
            named = view.kwargs.get(self.owner_kwarg)
            if named != user.username and PLATFORM_ADMIN not in held:
                raise ApiError("Not found.", status=404)
        missing = self.missing(request, held)
        if missing is None:
            return True
        self.message = self.message_for(missing)
        return False

    def message_for(self, missing: str) -> str:
        return self.admin_message if missing == PLATFORM_ADMIN else f"Missing permission: {missing}"


def _check(keys) -> None:
    unknown = [k for k in keys if k and k not in REGISTRY and k not in _PSEUDO_KEYS]
    if unknown:
        raise KeyError(f"unregistered permission keys: {unknown}")


def requires(
    *keys: str,
    rbac: str | None = None,
    rbac_write: str | None = None,
    owner_kwarg: str | None = None,
    admin_message: str | None = None,
) -> type[PlatformPermission]:
    """A permission class demanding every one of `keys` on the request's platform."""
    _check([*keys, rbac, rbac_write])
    attrs = {"keys": (MEMBER, *keys), "rbac": rbac, "rbac_write": rbac_write, "owner_kwarg": owner_kwarg}
    if admin_message:
        attrs["admin_message"] = admin_message
    name = "Requires_" + "_".join(k.replace(".", "_").replace("/", "_") for k in keys or (MEMBER,))
    return type(name, (PlatformPermission,), attrs)


# Any active member of the platform (their own inbox, alerts, preferences, devices).
PlatformMember = requires()
# Administrators of the platform (settings, templates, other members' data).
PlatformAdmin = requires(PLATFORM_ADMIN)
# The member a path's `user_id` names, or an admin of the platform.
MemberOrPlatformAdmin = requires(owner_kwarg="user_id")

"""Who may do what on which platform: the one authorisation path.

Each permission key the documents name (`notifications.bulk_sms`,
`Ibl.Notifications/Notification/list`, ...) is a real Django permission declared
in a model's Meta (its `name` is the key), registered here with the role
bundles that include it; apps register their own keys in `AppConfig.ready()`.

Every right is held on one platform, through a `Membership`:

- the keys of the membership's role bundle (`ROLE_BUNDLES`),
- the keys granted to that membership in the admin (`Membership.permissions`),
- `MEMBER` for any active membership, `PLATFORM_ADMIN` when the membership
  administers the platform (`Membership.is_platform_admin`).

`platform_permissions(user, platform)` computes that set; nothing held on
another platform, and no global Django permission or group, enters it. Only
superusers (the operator's accounts) hold every key on every platform. The DRF
permission classes of `notifications.api.permissions`, the WebSocket consumer
and the admin all ask this function.
"""

from __future__ import annotations

from dataclasses import dataclass

from notifications.models import Membership, Platform, Role

ADMIN = "admin"
LEARNER = "learner"

# Pseudo-keys held through the membership itself rather than a Django permission.
MEMBER = "platform.member"
PLATFORM_ADMIN = "platform.admin"

# Which bundles each platform role receives.
ROLE_BUNDLES: dict[str, frozenset[str]] = {
    Role.STUDENT: frozenset({LEARNER}),
    Role.OPEN_LEARNER: frozenset({LEARNER}),
    Role.INSTRUCTOR: frozenset({LEARNER}),
    Role.SUPPORT: frozenset({LEARNER}),
    Role.ADMIN: frozenset({LEARNER, ADMIN}),
    Role.SUPER_ADMIN: frozenset({LEARNER, ADMIN}),
}


@dataclass(frozen=True)
class PermissionKey:
    key: str  # as the documents spell it
    perm: str  # "app_label.codename" of the Django permission
    bundles: frozenset[str]


REGISTRY: dict[str, PermissionKey] = {}


def register(key: str, perm: str, *, bundles: tuple[str, ...] = ()) -> None:
    REGISTRY[key] = PermissionKey(key=key, perm=perm, bundles=frozenset(bundles))


def keys_for_role(role: str) -> frozenset[str]:
    bundles = ROLE_BUNDLES.get(role, frozenset())
    return frozenset(pk.key for pk in REGISTRY.values() if pk.bundles & bundles)


def key_permissions_q():
    """A Q on auth.Permission matching the registered keys' permissions."""
    from django.db.models import Q

    wanted = Q(pk__in=[])
    for pk in REGISTRY.values():
        app_label, codename = pk.perm.split(".", 1)
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    return wanted


def _key_for_perm() -> dict[tuple[str, str], str]:
    return {tuple(pk.perm.split(".", 1)): pk.key for pk in REGISTRY.values()}


def all_keys() -> frozenset[str]:
    return frozenset(REGISTRY) | {MEMBER, PLATFORM_ADMIN}


def membership_keys(*, user, role: str, is_platform_admin: bool, grants) -> frozenset[str]:
    """The keys one active membership gives: its role's bundles, MEMBER, PLATFORM_ADMIN, its grants.

    `grants` are the (app_label, codename) pairs of `Membership.permissions`;
    a superuser holds every key.
    """
    if user.is_superuser:
        return all_keys()
    keys = set(keys_for_role(role))
    keys.add(MEMBER)
    if is_platform_admin:
        keys.add(PLATFORM_ADMIN)
    by_perm = _key_for_perm()
    for app_label, codename in grants:
        key = by_perm.get((app_label, codename))
        if key is not None:
            keys.add(key)
    return frozenset(keys)


def platform_permissions(user, platform: Platform | None) -> frozenset[str]:
    """The keys `user` holds on `platform`: empty for anyone who is not an active member.

    Two small queries (the membership, then its grants); code serving a
    request uses `request_permissions`, which reads them from the token's
    cached credentials (`notifications.auth_cache`).
    """
    if user is None or platform is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    if not platform.is_active:
        return frozenset()
    if user.is_superuser:
        return all_keys()
    membership = (
        Membership.objects.filter(user=user, platform=platform, is_active=True)
        .only("role", "is_platform_admin")
        .first()
    )
    if membership is None:
        return frozenset()
    grants = membership.permissions.values_list("content_type__app_label", "codename")
    return membership_keys(
        user=user, role=membership.role, is_platform_admin=membership.is_platform_admin, grants=grants
    )


def request_credentials(request):
    """The `auth_cache.Credentials` `TokenAuthentication` attached to the request's token, or None."""
    creds = getattr(getattr(request, "auth", None), "credentials", None)
    if creds is None or creds.token.user_id != getattr(request.user, "pk", None):
        return None
    return creds


def request_permissions(request, platform: Platform) -> frozenset[str]:
    """`platform_permissions` for the request's user, computed once per request and platform.

    A token-authenticated request reads them from its credentials (one cached
    lookup for the whole request); a superuser holds every key on any active platform.
    """
    creds = request_credentials(request)
    if creds is not None:
        if platform.pk in creds.keys:
            return creds.keys[platform.pk]
        if request.user.is_superuser and platform.is_active:
            return all_keys()
        return frozenset()
    cache = getattr(request, "_platform_permissions", None)
    if cache is None:
        cache = {}
        request._platform_permissions = cache
    if platform.pk not in cache:
        cache[platform.pk] = platform_permissions(request.user, platform)
    return cache[platform.pk]


def user_may(user, platform: Platform, key: str) -> bool:
    """May `user` do `key` on `platform`? (For code without a request: the admin, commands.)"""
    return key in platform_permissions(user, platform)


_CORE = [
    ("notifications.bulk_sms", "notifications.bulk_sms", (ADMIN,)),
    ("notifications.bulk_email", "notifications.bulk_email", (ADMIN,)),
    ("notifications.bulk_push", "notifications.bulk_push", (ADMIN,)),
    ("notifications.bulk_in_app", "notifications.bulk_in_app", (ADMIN,)),
    ("notifications_scheduled.list", "notifications.scheduled_list", (ADMIN,)),
    ("notifications_scheduled.get", "notifications.scheduled_get", (ADMIN,)),
    ("notifications_scheduled.cancel", "notifications.scheduled_cancel", (ADMIN,)),
    ("notifications.ws_connect", "notifications.ws_connect", (LEARNER,)),
    ("notifications.list_mine", "notifications.list_mine", (LEARNER,)),
    ("notifications.count_unread", "notifications.count_unread", (LEARNER,)),
    # Mark one's own notifications read or dismiss them (/api/v1 inbox).
    ("notifications.update_mine", "notifications.update_mine", (LEARNER,)),
    # A platform's backend asks for short-lived inbox tokens for its users.
    ("notifications.inbox_token", "notifications.inbox_token", (ADMIN,)),
    ("Ibl.Notifications/Notification/list", "notifications.ibl_notification_list", (ADMIN,)),
    ("Ibl.Notifications/Notification/write", "notifications.ibl_notification_write", (ADMIN,)),
    ("Ibl.Notifications/Notification/delete", "notifications.ibl_notification_delete", (ADMIN,)),
    ("Ibl.Notifications/SMTP/action", "notifications.ibl_smtp_action", (ADMIN,)),
]
for _key, _perm, _bundles in _CORE:
    register(_key, _perm, bundles=_bundles)

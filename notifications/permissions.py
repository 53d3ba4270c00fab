"""The registry of permission keys the documents name, and the role bundles.

Each key (`notifications.bulk_sms`, `Ibl.Notifications/Notification/list`, ...)
is a real Django permission declared in a model's Meta (its `name` is the key),
so admins grant and revoke it in the Django admin. Role groups bundle them;
`sync_role_groups` runs after every `migrate` and keeps the groups exact.
Apps register their own keys in `AppConfig.ready()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from notifications.models import Role

ADMIN = "admin"
LEARNER = "learner"

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


def role_group_name(role: str) -> str:
    return f"Role: {role}"


def has_key(user, key: str) -> bool:
    """True when `user` holds the permission registered under `key`."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.has_perm(REGISTRY[key].perm)


def keys_for_role(role: str) -> set[str]:
    bundles = ROLE_BUNDLES.get(role, frozenset())
    return {pk.key for pk in REGISTRY.values() if pk.bundles & bundles}


def sync_role_groups(**kwargs) -> None:
    """Create one group per role holding exactly its bundles' permissions."""
    from django.contrib.auth.models import Group, Permission

    perms = {}
    for pk in REGISTRY.values():
        app_label, codename = pk.perm.split(".", 1)
        perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if perm is None:  # its app has not been migrated yet; the next migrate finishes the job
            continue
        perms[pk.key] = perm
    for role in Role.values:
        group, _ = Group.objects.get_or_create(name=role_group_name(role))
        group.permissions.set([perms[k] for k in keys_for_role(role) if k in perms])


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

"""Model signals of the core app.

Every change that can take a right away from a user (a membership saved,
deactivated or deleted, its grants changed, the user deactivated or deleted)
makes that user's open WebSockets check their credentials again at once
(`notifications.credentials`).

Every change that can alter a token's credentials (any membership, user or
platform write, a new membership included) drops them from the HTTP
credentials cache (`notifications.auth_cache`); token and queryset writes, which
send no model signals, announce themselves with `models.core.credentials_written`
(`AuthToken.delete`, `AuthTokenQuerySet.update/delete`, `MembershipQuerySet.update/bulk_create`).
"""

from __future__ import annotations

from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from notifications.auth_cache import credentials_forget, credentials_forget_platform
from notifications.credentials import sockets_recheck_for_users


def membership_changed(sender, instance, created=False, **kwargs):
    if not created:  # a new membership takes nothing away
        sockets_recheck_for_users(user_ids=[instance.user_id])


def membership_grants_changed(sender, instance, action, reverse, **kwargs):
    if action in ("post_add", "post_remove", "post_clear") and not reverse:
        sockets_recheck_for_users(user_ids=[instance.user_id])


def user_saved(sender, instance, created, **kwargs):
    if not created and not instance.is_active:
        sockets_recheck_for_users(user_ids=[instance.pk])


def user_deleted(sender, instance, **kwargs):
    sockets_recheck_for_users(user_ids=[instance.pk])


def membership_written(sender, instance, **kwargs):
    credentials_forget(user_ids=[instance.user_id])


def membership_grants_written(sender, instance, action, reverse, pk_set=None, **kwargs):
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if reverse:  # a permission's memberships changed: `pk_set` names them
        from notifications.models import Membership

        users = Membership.objects.filter(pk__in=pk_set or ()).values_list("user_id", flat=True)
        credentials_forget(user_ids=list(users))
    else:
        credentials_forget(user_ids=[instance.user_id])


def user_written(sender, instance, created=False, update_fields=None, **kwargs):
    # A login stamps last_login; nothing a credential holds changes.
    if not created and set(update_fields or ()) != {"last_login"}:
        credentials_forget(user_ids=[instance.pk])


def platform_written(sender, instance, created=False, **kwargs):
    if not created:
        credentials_forget_platform(platform_id=instance.pk)


def credentials_written(sender, user_ids=(), key_hashes=(), **kwargs):
    credentials_forget(user_ids=user_ids, key_hashes=key_hashes)


def connect() -> None:
    from notifications.models import Membership, Platform, User
    from notifications.models.core import credentials_written as credentials_written_signal

    credentials_written_signal.connect(credentials_written, dispatch_uid="credentials_written_cache")

    post_save.connect(membership_written, sender=Membership, dispatch_uid="membership_saved_credentials")
    post_delete.connect(membership_written, sender=Membership, dispatch_uid="membership_deleted_credentials")
    m2m_changed.connect(
        membership_grants_written, sender=Membership.permissions.through, dispatch_uid="membership_grants_credentials"
    )
    post_save.connect(user_written, sender=User, dispatch_uid="user_saved_credentials")
    pre_delete.connect(user_written, sender=User, dispatch_uid="user_deleted_credentials")
    post_save.connect(platform_written, sender=Platform, dispatch_uid="platform_saved_credentials")
    pre_delete.connect(platform_written, sender=Platform, dispatch_uid="platform_deleted_credentials")

    post_save.connect(membership_changed, sender=Membership, dispatch_uid="membership_saved_sockets")
    post_delete.connect(membership_changed, sender=Membership, dispatch_uid="membership_deleted_sockets")
    m2m_changed.connect(
        membership_grants_changed, sender=Membership.permissions.through, dispatch_uid="membership_grants_sockets"
    )
    post_save.connect(user_saved, sender=User, dispatch_uid="user_saved_sockets")
    post_delete.connect(user_deleted, sender=User, dispatch_uid="user_deleted_sockets")

"""Model signals of the core app.

Every change that can take a right away from a user (a membership saved,
deactivated or deleted, its grants changed, the user deactivated or deleted)
makes that user's open WebSockets check their credentials again at once
(`notifications.credentials`).
"""

from __future__ import annotations

from django.db.models.signals import m2m_changed, post_delete, post_save

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


def connect() -> None:
    from notifications.models import Membership, User

    post_save.connect(membership_changed, sender=Membership, dispatch_uid="membership_saved_sockets")
    post_delete.connect(membership_changed, sender=Membership, dispatch_uid="membership_deleted_sockets")
    m2m_changed.connect(
        membership_grants_changed, sender=Membership.permissions.through, dispatch_uid="membership_grants_sockets"
    )
    post_save.connect(user_saved, sender=User, dispatch_uid="user_saved_sockets")
    post_delete.connect(user_deleted, sender=User, dispatch_uid="user_deleted_sockets")

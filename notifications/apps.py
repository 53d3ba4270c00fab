from django.apps import AppConfig
from django.db.models.signals import post_migrate, post_save


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        from notifications import bulk, permissions, signals
        from notifications.api import schema  # noqa: F401  (registers the token scheme with drf-spectacular)

        # Runs after every app's permissions exist (sender=None: once per app
        # migrated, cheap and idempotent).
        post_migrate.connect(permissions.sync_role_groups, dispatch_uid="sync_role_groups")
        post_save.connect(signals.user_role_group, sender=self.get_model("User"), dispatch_uid="user_role_group")
        bulk.ready()

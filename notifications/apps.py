from django.apps import AppConfig
from django.core import checks


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        from notifications import bulk_scheduled, db, scheduler, signals, tasks
        from notifications.api import schema  # noqa: F401  (registers the token scheme with drf-spectacular)
        from notifications.pipeline import dispatch, due, eligibility, escalation

        signals.connect()
        # A SQLite table rebuilt by a migration loses its triggers; put the counters' back.
        from django.db.models.signals import post_migrate

        from notifications.sqlite_triggers import counter_triggers_ensure

        post_migrate.connect(counter_triggers_ensure, sender=self, dispatch_uid="notifications_sqlite_triggers")
        bulk_scheduled.ready()
        db.ready()
        from notifications.checks import check_channel_backends, check_metrics_networks

        checks.register(check_channel_backends, "notifications")
        checks.register(check_metrics_networks, "notifications")
        # CORS on the inbox endpoints for the origins platforms list.
        from corsheaders.signals import check_request_enabled

        from notifications.inbox_tokens import cors_allowed

        check_request_enabled.connect(cors_allowed, dispatch_uid="inbox_cors_allowed")
        from django.contrib.auth.signals import user_logged_out

        from notifications.inbox_page import revoke_session_tokens

        user_logged_out.connect(revoke_session_tokens, dispatch_uid="inbox_revoke_session_tokens")
        # Only the tasks module knows Celery: the sweep and the pipeline are handed its queues.
        scheduler.use_enqueue(tasks.SCHEDULER_QUEUE)
        dispatch.use_queue(tasks.DISPATCH_QUEUE)
        # A platform with push turned off sends no push, whichever path asks.
        eligibility.register_channel_filter(eligibility.push_switch)
        # Addresses on a platform's suppression list get a suppressed row, never a send.
        from django.db.models.signals import post_delete, post_save

        from notifications import suppressions
        from notifications.models import Suppression
        from notifications.pipeline import rules

        rules.register_rule(suppressions.SUPPRESSION_RULE)
        post_save.connect(suppressions.suppressions_changed, sender=Suppression, dispatch_uid="suppressions_saved")
        post_delete.connect(suppressions.suppressions_changed, sender=Suppression, dispatch_uid="suppressions_deleted")
        # Retries that fell due and rows whose dispatcher died go out through the sweep.
        scheduler.register(
            scheduler.DueWorkSource(
                name="deliveries",
                claim=due.deliveries_due_claim,
                run=due.deliveries_due_run,
                oldest_due=due.deliveries_oldest_due,
            )
        )
        # In-app rows still unread after their type's wait get their escalation (pipeline.fallback).
        scheduler.register(escalation.DUE_WORK)

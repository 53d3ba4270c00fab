from django.apps import AppConfig


class BuilderConfig(AppConfig):
    name = "builder"
    verbose_name = "Notification builder"

    def ready(self):
        from builder import runs, services, tasks
        from notifications import permissions, scheduler

        # Only the tasks module knows Celery: the services are handed its enqueue.
        services.use_enqueue(tasks.build_send_enqueue)

        permissions.register(
            "Ibl.Notifications/NotificationBuilder/action", "builder.direct_send", bundles=(permissions.ADMIN,)
        )
        # Queued builds whose process_on has come, and sends whose worker died.
        scheduler.register(
            scheduler.DueWorkSource(
                name="builder.builds",
                claim=runs.builds_claim_due,
                run=lambda *, item_id: runs.build_run(build_id=item_id),
                next_due=runs.builds_next_due,
                oldest_due=runs.builds_oldest_due,
            )
        )

from django.apps import AppConfig

# The RBAC grant the webhook endpoints of the IBL surface demand on platforms that enable RBAC.
WEBHOOK_ACTION = "Ibl.Notifications/Webhook/action"


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Outbound webhooks"

    def ready(self):
        from notifications import lifecycle, permissions, scheduler
        from webhooks import delivery, events, tasks

        permissions.register(WEBHOOK_ACTION, "webhooks.ibl_webhook_action", bundles=(permissions.ADMIN,))
        # The core announces; this app listens and never is imported by it.
        events.connect()
        lifecycle.register_interest(events.subscribed)
        delivery.use_queue(tasks.DELIVERY_QUEUE)
        # Retries that fell due, and messages whose task was lost, go out through the sweep.
        scheduler.register(
            scheduler.DueWorkSource(
                name="webhooks",
                claim=delivery.messages_claim_due,
                run=lambda *, item_id: delivery.messages_deliver(ids=[item_id]),
                run_many=lambda *, item_ids: delivery.messages_deliver(ids=item_ids),
                next_due=delivery.messages_next_due,
                oldest_due=delivery.messages_oldest_due,
            )
        )

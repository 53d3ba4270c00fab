from django.apps import AppConfig
from django.core import checks


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts and events"

    def ready(self):
        from alerts import services
        from alerts.checks import check_alert_settings
        from notifications import permissions, scheduler

        permissions.register("alerts.create_for_user", "alerts.create_for_user")
        # The core sweeps due alerts without importing this app.
        scheduler.register(
            scheduler.DueWorkSource(
                name="alerts",
                claim=services.alerts_claim_due,
                run=lambda *, item_id: services.alert_notify(alert_id=item_id),
                next_due=services.alerts_next_due,
                oldest_due=services.alerts_oldest_due,
            )
        )
        checks.register(check_alert_settings, "alerts")

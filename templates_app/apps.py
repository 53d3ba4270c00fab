from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TemplatesAppConfig(AppConfig):
    name = "templates_app"
    verbose_name = "Notification templates"

    def ready(self):
        from notifications import permissions, scheduler
        from notifications.pipeline import eligibility, rules
        from templates_app.automation import periodic
        from templates_app.services import delivery_rules, templates
        from templates_app.services.preferences import deliveries_filter_opted_out

        permissions.register(
            "Ibl.Notifications/Template/list", "templates_app.ibl_template_list", bundles=(permissions.ADMIN,)
        )
        permissions.register(
            "Ibl.Notifications/Template/write", "templates_app.ibl_template_write", bundles=(permissions.ADMIN,)
        )
        # Granted to service accounts one by one (the platform's own systems post events).
        permissions.register(
            "Ibl.Notifications/Event/send", "templates_app.ibl_event_send", bundles=(permissions.ADMIN,)
        )
        # Defaults follow the code on every migrate (deploys and fresh test databases).
        post_migrate.connect(templates.sync_defaults_after_migrate, sender=self, dispatch_uid="templates_sync_defaults")
        eligibility.register_recipient_filter(deliveries_filter_opted_out)
        rules.register_critical_types(delivery_rules.critical_types_of)
        scheduler.register(periodic.DUE_WORK)

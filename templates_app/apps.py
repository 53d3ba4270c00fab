from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TemplatesAppConfig(AppConfig):
    name = "templates_app"
    verbose_name = "Notification templates"

    def ready(self):
        from notifications import digests, permissions, scheduler
        from notifications.pipeline import eligibility, fallback, policies, rules
        from templates_app import messages, selectors
        from templates_app.automation import periodic
        from templates_app.digests import buckets as digest_buckets
        from templates_app.services import delivery_rules, frequency_caps, templates
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
        # Each type's channel fallback and escalation, kept with its template (pipeline.fallback).
        policies.register_policy_lookup(selectors.delivery_policies)
        # A fallback written in dispatch gets its channel's text from the template it came from.
        fallback.register_follow_up_renderer(messages.follow_up_messages)
        rules.register_critical_types(delivery_rules.critical_types_of)
        rules.register_rule(delivery_rules.QUIET_HOURS)
        rules.register_rule(frequency_caps.FREQUENCY_CAP)
        from django.db.models.signals import post_delete, post_save

        from notifications.models import Platform
        from templates_app.models import QuietHours

        for model in (Platform, QuietHours):
            for signal in (post_save, post_delete):
                signal.connect(
                    delivery_rules.quiet_hours_forget, sender=model, dispatch_uid=f"quiet_hours_forget_{model.__name__}"
                )
        from templates_app.models import FrequencyCap

        for model in (Platform, FrequencyCap):
            for signal in (post_save, post_delete):
                signal.connect(
                    frequency_caps.frequency_caps_forget, sender=model, dispatch_uid=f"caps_forget_{model.__name__}"
                )
        scheduler.register(periodic.DUE_WORK)
        scheduler.register(digest_buckets.DUE_WORK)
        digests.register(digest_buckets.DIGESTER)

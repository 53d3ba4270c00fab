from django.contrib import admin, messages

from alerts import selectors, services
from alerts.models import Alert, UpcomingEvent
from notifications.admin_scoping import PlatformScopedAdmin


def _set_filter(title: str, field: str):
    """A yes/no filter on whether a timestamp field is set (deleted, archived)."""

    class SetFilter(admin.SimpleListFilter):
        parameter_name = field.removesuffix("_at")

        def lookups(self, request, model_admin):
            return [("yes", "Yes"), ("no", "No")]

        def queryset(self, request, queryset):
            if self.value() == "yes":
                return queryset.filter(**{f"{field}__isnull": False})
            if self.value() == "no":
                return queryset.filter(**{f"{field}__isnull": True})
            return queryset

    SetFilter.title = title
    SetFilter.__name__ = f"{field.title().replace('_', '')}Filter"
    return SetFilter


DeletedFilter = _set_filter("deleted", "deleted_at")
ArchivedFilter = _set_filter("archived", "archived_at")
NotifiedFilter = _set_filter("notified", "notified_at")


@admin.register(Alert)
class AlertAdmin(PlatformScopedAdmin):
    list_display = [
        "id",
        "title",
        "user",
        "platform",
        "type",
        "is_read",
        "is_event",
        "scheduled_at",
        "notify_at",
        "notified_at",
        "created_at",
        "deleted_at",
        "archived_at",
    ]
    list_filter = ["type", "is_read", "is_event", DeletedFilter, ArchivedFilter, NotifiedFilter, "platform"]
    search_fields = ["title", "message", "user__username", "user__email", "platform__key"]
    list_select_related = ["user", "platform"]
    date_hierarchy = "created_at"
    autocomplete_fields = ["user", "created_by"]
    readonly_fields = [
        "created_at",
        "updated_at",
        "read_at",
        "deleted_at",
        "archived_at",
        "due_at",
        "notify_generation",
        "notified_at",
        "claimed_until",
    ]
    fieldsets = [
        (None, {"fields": ["platform", "user", "created_by", "title", "message", "type"]}),
        ("Event", {"fields": ["is_event", "scheduled_at", "notify_at"]}),
        ("State", {"fields": ["is_read", "read_at", "created_at", "updated_at", "deleted_at", "archived_at"]}),
        ("Notification", {"fields": ["due_at", "notify_generation", "notified_at", "claimed_until"]}),
    ]
    actions = ["restore", "soft_delete"]

    def get_actions(self, request):
        # Alerts are deleted softly (kept for audit, restorable): Django's own
        # hard "Delete selected alerts" would sit beside ours under the same name.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_readonly_fields(self, request, obj=None):
        # Whose alert it is never changes; a new owner gets a new alert.
        if obj is not None:
            return ["platform", "user", "created_by", *self.readonly_fields]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        # Through the services, so a changed notify time reschedules the notification.
        if change:
            edited = {field: form.cleaned_data[field] for field in form.changed_data if field in services.EDITABLE}
            if edited:
                services.alert_update(alert=obj, data=edited)
            return
        created = services.alert_create(
            platform=obj.platform,
            user=obj.user,
            created_by=obj.created_by,
            **{field: getattr(obj, field) for field in services.EDITABLE},
        )
        obj.pk = created.pk
        obj.refresh_from_db()

    @admin.action(description="Restore selected deleted alerts")
    def restore(self, request, queryset):
        n = services.alerts_restore(alerts=queryset)
        self.message_user(request, f"Restored {n} alert(s).", messages.SUCCESS)

    @admin.action(description="Delete selected alerts (soft: kept for audit, restorable)")
    def soft_delete(self, request, queryset):
        n = services.alerts_delete(alerts=queryset)
        self.message_user(request, f"Deleted {n} alert(s).", messages.SUCCESS)


@admin.register(UpcomingEvent)
class UpcomingEventAdmin(PlatformScopedAdmin):
    """A calendar-ish list: events still to come, soonest first, drill down by day."""

    list_display = ["scheduled_at", "title", "user", "platform", "type", "notify_at", "notified_at", "is_read"]
    list_display_links = ["scheduled_at", "title"]
    list_filter = ["type", "is_read", NotifiedFilter, "platform"]
    search_fields = ["title", "message", "user__username", "user__email"]
    list_select_related = ["user", "platform"]
    date_hierarchy = "scheduled_at"
    ordering = ["scheduled_at", "id"]
    readonly_fields = AlertAdmin.readonly_fields
    fieldsets = AlertAdmin.fieldsets
    autocomplete_fields = ["user", "created_by"]

    def get_queryset(self, request):
        return self.scope_queryset(request, selectors.upcoming_events().select_related("user", "platform"))

    def has_add_permission(self, request):
        # Events are created as alerts; this view only lists what is coming.
        return False

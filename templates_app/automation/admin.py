"""Admin screens of the automation records: mentors, learner activity, the events received."""

from __future__ import annotations

from django.contrib import admin

from notifications.admin_scoping import PlatformScopedAdmin
from templates_app.models import LearnerActivity, Mentor, NotificationEvent


@admin.register(Mentor)
class MentorAdmin(PlatformScopedAdmin):
    list_display = ["unique_id", "name", "platform", "owner", "updated_at"]
    list_filter = ["platform"]
    search_fields = ["unique_id", "name", "owner__username"]
    autocomplete_fields = ["platform", "owner"]


@admin.register(LearnerActivity)
class LearnerActivityAdmin(PlatformScopedAdmin):
    list_display = ["user", "platform", "kind", "course_name", "value", "occurred_at"]
    list_filter = ["kind", "platform", "occurred_at"]
    search_fields = ["user__username", "course_name"]
    autocomplete_fields = ["user", "platform"]
    date_hierarchy = "occurred_at"


@admin.register(NotificationEvent)
class NotificationEventAdmin(PlatformScopedAdmin):
    list_display = ["type", "event_id", "platform", "status", "sent", "failed", "created_at"]
    list_filter = ["status", "platform", "type"]
    search_fields = ["event_id", "type", "platform__key"]
    readonly_fields = [f.name for f in NotificationEvent._meta.fields]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    @admin.display(description="sent")
    def sent(self, obj):
        return (obj.result or {}).get("sent", 0)

    @admin.display(description="failed")
    def failed(self, obj):
        return (obj.result or {}).get("failed", 0)

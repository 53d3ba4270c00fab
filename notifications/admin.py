from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils import timezone

from notifications.models import Attachment, AuthToken, InboxCounter, Membership, Notification, Platform, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Platform)
class PlatformAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "site_url", "rbac_enabled", "push_enabled", "is_active", "created_at"]
    list_filter = ["is_active", "rbac_enabled", "push_enabled"]
    search_fields = ["key", "name", "site_name", "base_domain"]
    prepopulated_fields = {"key": ["name"]}
    inlines = [MembershipInline]


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "email", "phone_number", "role", "is_staff", "is_active", "is_service_account"]
    list_filter = ["role", "is_staff", "is_superuser", "is_active", "is_service_account", "memberships__platform"]
    search_fields = ["username", "email", "phone_number", "first_name", "last_name"]
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("Notifications", {"fields": ["phone_number", "role", "timezone", "is_service_account"]}),
    )
    add_fieldsets = (*DjangoUserAdmin.add_fieldsets, ("Notifications", {"fields": ["email", "phone_number", "role"]}))


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "platform", "is_platform_admin", "is_active", "created_at"]
    list_filter = ["platform", "is_platform_admin", "is_active"]
    search_fields = ["user__username", "user__email", "platform__key"]
    autocomplete_fields = ["user", "platform"]


@admin.register(AuthToken)
class AuthTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["prefix", "user__username", "name"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        # A token's value is shown once at creation: issue them with the API or `issue_token`.
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        n = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {n} token(s).", messages.SUCCESS)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "platform",
        "channel",
        "recipient_key",
        "title",
        "delivery_status",
        "status",
        "attempts",
        "next_attempt_at",
        "source",
    ]
    list_filter = ["platform", "channel", "delivery_status", "status", "notification_type", "level"]
    search_fields = ["id", "recipient_key", "address", "title", "source", "user__username", "provider_message_id"]
    readonly_fields = ["id", "created_at", "updated_at", "sent_at", "read_at", "claimed_until", "next_attempt_at"]
    raw_id_fields = ["user"]
    date_hierarchy = "created_at"
    list_select_related = ["platform"]
    show_full_result_count = False  # the table grows to millions of rows


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ["filename", "source", "content_type", "created_at"]
    search_fields = ["filename", "source"]


@admin.register(InboxCounter)
class InboxCounterAdmin(admin.ModelAdmin):
    """Read-only: database triggers keep these exact (see `services.inbox_counters_rebuild`)."""

    list_display = ["user", "platform", "unread", "read", "cancelled"]
    list_filter = ["platform"]
    search_fields = ["user__username", "user__email", "platform__key"]
    list_select_related = ["user", "platform"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

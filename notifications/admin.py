import time
from datetime import UTC, datetime

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule
from fcm_django.models import FCMDevice

from notifications.admin_scoping import (
    PlatformMembersAdmin,
    PlatformScopedAdmin,
    PlatformScopedInline,
    SuperuserOnlyAdmin,
    is_operator,
    superuser_only,
)
from notifications.credentials import tokens_revoke
from notifications.models import (
    Attachment,
    AuthToken,
    DeliveryReceipt,
    DeviceRegistration,
    InboxCounter,
    Membership,
    Notification,
    Platform,
    PlatformProviderCredentials,
    PlatformSMTPSettings,
    Suppression,
    User,
)
from notifications.smtp import TargetRefused, smtp_target_resolve


def key_permissions_field(db_field, formfield):
    """Grants on a membership offer the registered permission keys; a user's own, everything else.

    API rights are per platform (`notifications.permissions`): a key granted on
    the user would grant nothing, so the user form does not offer them.
    """
    from django.contrib.auth.models import Permission

    from notifications.permissions import key_permissions_q

    if formfield is None:
        return formfield
    if db_field.name == "permissions":
        formfield.queryset = Permission.objects.filter(key_permissions_q()).order_by("name")
    elif db_field.name == "user_permissions":
        formfield.queryset = formfield.queryset.exclude(key_permissions_q())
        formfield.help_text = (
            "Django admin permissions. API permission keys are granted per platform, on the user's memberships."
        )
    return formfield


class MembershipInline(PlatformScopedInline):
    model = Membership
    platform_lookup = "platform"
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "is_platform_admin", "permissions", "is_active"]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        return key_permissions_field(db_field, super().formfield_for_manytomany(db_field, request, **kwargs))


class UserMembershipInline(MembershipInline):
    autocomplete_fields = ["platform"]
    fields = ["platform", "role", "is_platform_admin", "permissions", "is_active"]


@admin.register(Platform)
class PlatformAdmin(PlatformScopedAdmin):
    platform_lookup = "id"
    list_display = ["key", "name", "site_url", "rbac_enabled", "push_enabled", "is_active", "created_at"]
    list_filter = ["is_active", "rbac_enabled", "push_enabled"]
    search_fields = ["key", "name", "site_name", "base_domain"]
    prepopulated_fields = {"key": ["name"]}
    inlines = [MembershipInline]

    # A platform admin edits their platform's settings; creating, deleting,
    # renaming (the key is in every path) and switching off tenants is the operator's.
    def has_add_permission(self, request):
        return is_operator(request)

    def has_delete_permission(self, request, obj=None):
        return is_operator(request) and super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields if is_operator(request) else [*fields, "key", "is_active"]

    def get_prepopulated_fields(self, request, obj=None):
        return super().get_prepopulated_fields(request, obj) if is_operator(request) else {}


@admin.register(User)
class UserAdmin(PlatformMembersAdmin, DjangoUserAdmin):
    list_display = ["username", "email", "phone_number", "is_staff", "is_active", "is_service_account"]
    list_filter = ["is_staff", "is_superuser", "is_active", "is_service_account", "memberships__platform"]
    search_fields = ["username", "email", "phone_number", "first_name", "last_name"]
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("Notifications", {"fields": ["phone_number", "timezone", "is_service_account"]}),
    )
    add_fieldsets = (*DjangoUserAdmin.add_fieldsets, ("Notifications", {"fields": ["email", "phone_number"]}))
    # Roles and permission keys are per platform: edit them on the memberships.
    inlines = [UserMembershipInline]

    def get_inlines(self, request, obj):
        # A new user's platform is the add form's own field; memberships are edited once the user exists.
        return self.inlines if obj is not None else []

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        return key_permissions_field(db_field, super().formfield_for_manytomany(db_field, request, **kwargs))


@admin.register(Membership)
class MembershipAdmin(PlatformScopedAdmin):
    list_display = ["user", "platform", "role", "is_platform_admin", "is_active", "created_at"]
    list_filter = ["platform", "role", "is_platform_admin", "is_active"]
    search_fields = ["user__username", "user__email", "platform__key"]
    autocomplete_fields = ["user", "platform"]
    filter_horizontal = ["permissions"]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        return key_permissions_field(db_field, super().formfield_for_manytomany(db_field, request, **kwargs))


@admin.register(AuthToken)
class AuthTokenAdmin(SuperuserOnlyAdmin):
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
        n = tokens_revoke(tokens=queryset)  # their open WebSockets close too
        self.message_user(request, f"Revoked {n} token(s).", messages.SUCCESS)


class DeliveryReceiptInline(PlatformScopedInline):
    """What the provider reported after taking the delivery; written by its receipts only."""

    model = DeliveryReceipt
    platform_lookup = "platform"
    can_delete = False
    extra = 0
    max_num = 0
    fields = readonly_fields = [
        "provider",
        "provider_status",
        "detail",
        "delivered_at",
        "opened_at",
        "clicked_at",
        "bounced_at",
        "deferred_at",
        "complained_at",
        "unsubscribed_at",
        "last_event_at",
    ]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(PlatformScopedAdmin):
    inlines = [DeliveryReceiptInline]
    list_display = [
        "created_at",
        "platform",
        "channel",
        "recipient",
        "title",
        "delivery_status",
        "rule",
        "status",
        "attempts",
        "next_attempt_at",
        "provider",
        "rule",
        "source",
    ]
    # `rule`: which delivery rule wrote or changed the row (a fallback, an escalation, a failover, ...).
    list_filter = ["platform", "channel", "delivery_status", "rule", "provider", "status", "notification_type", "level"]
    search_fields = ["id", "recipient_key", "address", "title", "source", "user__username", "provider_message_id"]
    readonly_fields = ["id", "created_at", "updated_at", "sent_at", "read_at", "claimed_until", "next_attempt_at"]
    raw_id_fields = ["user"]
    date_hierarchy = "created_at"
    list_select_related = ["platform", "user"]
    show_full_result_count = False  # the table grows to millions of rows

    @admin.display(description="recipient", ordering="recipient_key")
    def recipient(self, obj):
        from notifications.bulk_scheduled.admin import recipient_label

        return recipient_label(obj)


@admin.register(Attachment)
class AttachmentAdmin(SuperuserOnlyAdmin):
    list_display = ["filename", "source", "content_type", "created_at"]
    search_fields = ["filename", "source"]


class PlatformSMTPSettingsForm(forms.ModelForm):
    # Write-only, as in the API: the stored password is never shown.
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the stored password.",
    )
    clear_password = forms.BooleanField(required=False, help_text="Remove the stored password.")

    class Meta:
        model = PlatformSMTPSettings
        fields = ["platform", "host", "port", "username", "use_tls", "use_ssl", "from_email", "timeout", "is_active"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("use_tls") and cleaned.get("use_ssl"):
            raise forms.ValidationError("Use TLS and use SSL are mutually exclusive.")
        if cleaned.get("host") and cleaned.get("port"):
            try:
                # The same check as the API's, name resolution included.
                cleaned["host"] = smtp_target_resolve(host=cleaned["host"], port=cleaned["port"]).host
            except TargetRefused as exc:
                self.add_error("host" if exc.field == "smtp_host" else "port", exc.message)
        return cleaned

    def save(self, commit=True):
        obj = super().save(commit=False)
        if self.cleaned_data.get("clear_password"):
            obj.password = ""
        elif self.cleaned_data.get("password"):
            obj.password = self.cleaned_data["password"]
        if commit:
            obj.save()
        return obj


@admin.register(PlatformSMTPSettings)
class PlatformSMTPSettingsAdmin(PlatformScopedAdmin):
    form = PlatformSMTPSettingsForm
    list_display = ["platform", "host", "port", "username", "use_tls", "use_ssl", "has_password", "is_active"]
    list_filter = ["is_active", "use_tls", "use_ssl"]
    search_fields = ["platform__key", "host", "username", "from_email"]
    autocomplete_fields = ["platform"]
    list_select_related = ["platform"]

    @admin.display(boolean=True, description="password")
    def has_password(self, obj):
        # False also when SECRET_KEY changed since it was stored: enter it again.
        return bool(obj.password)


class PlatformProviderCredentialsForm(forms.ModelForm):
    # Write-only, like the SMTP password: the stored secret is never shown.
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="AfroMessage: the API token. Africa's Talking: the API key. Leave empty to keep the stored one.",
    )
    clear_secret = forms.BooleanField(required=False, help_text="Remove the stored secret.")

    class Meta:
        model = PlatformProviderCredentials
        fields = ["platform", "provider", "username", "sender_id", "sender_name", "is_active"]
        help_texts = {
            "username": "Africa's Talking: the application's username (AfroMessage has none).",
            "sender_id": "AfroMessage: the identifier id of a short code. Africa's Talking: the short code or "
            "alphanumeric sender (from).",
            "sender_name": "AfroMessage: a verified sender name.",
        }

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("provider") == "africastalking" and not cleaned.get("username"):
            self.add_error("username", "Africa's Talking needs the application's username.")
        has_secret = bool(cleaned.get("secret")) or (
            self.instance.pk and self.instance.secret_encrypted and not cleaned.get("clear_secret")
        )
        if cleaned.get("is_active") and not has_secret:
            self.add_error("secret", "Active credentials need a secret.")
        return cleaned

    def save(self, commit=True):
        obj = super().save(commit=False)
        if self.cleaned_data.get("clear_secret"):
            obj.secret = ""
        elif self.cleaned_data.get("secret"):
            obj.secret = self.cleaned_data["secret"]
        if commit:
            obj.save()
        return obj


@admin.register(PlatformProviderCredentials)
class PlatformProviderCredentialsAdmin(PlatformScopedAdmin):
    """A platform's own SMS provider accounts; the change list also shows every provider's circuit to operators."""

    form = PlatformProviderCredentialsForm
    change_list_template = "admin/notifications/platformprovidercredentials/change_list.html"
    list_display = ["platform", "provider", "username", "sender_id", "has_secret", "is_active", "updated_at"]
    list_filter = ["provider", "is_active"]
    search_fields = ["platform__key", "username", "sender_id", "sender_name"]
    autocomplete_fields = ["platform"]
    list_select_related = ["platform"]

    @admin.display(boolean=True, description="secret")
    def has_secret(self, obj):
        # False also when SECRET_KEY changed since it was stored: enter it again.
        return bool(obj.secret)

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        if is_operator(request):
            # The circuits are the project's, not a platform's: operators only.
            from notifications.circuits import circuits_overview

            now = time.time()

            def when(ts: float):
                return datetime.fromtimestamp(ts, UTC) if ts else None

            extra_context["circuits"] = [
                {
                    "channel": c.channel,
                    "provider": c.provider,
                    "state": c.state(now).replace("_", "-"),
                    "failures": c.failures,
                    "open_until": when(c.open_until) if c.state(now) == "open" else None,
                    "opened_at": when(c.opened_at),
                    "opens": c.opens,
                    "last_error": c.last_error,
                    "last_failure_at": when(c.last_failure_at),
                }
                for c in circuits_overview()
            ]
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(Suppression)
class SuppressionAdmin(PlatformScopedAdmin):
    """A platform's suppression list: receipts and unsubscribe links add entries; deleting one lifts it."""

    list_display = ["address", "channel", "reason", "notification_type", "source", "platform", "created_at"]
    list_filter = ["platform", "channel", "reason"]
    search_fields = ["address", "source", "platform__key"]
    autocomplete_fields = ["platform"]
    list_select_related = ["platform"]
    raw_id_fields = ["notification"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        # An entry is a record of what happened: lift it (delete) rather than edit it.
        if obj is not None:
            return [f.name for f in self.model._meta.fields]
        return ["notification"]

    @admin.action(description="Lift selected entries (send to these addresses again)")
    def lift(self, request, queryset):
        n, _ = self.get_queryset(request).filter(pk__in=queryset.values("pk")).delete()
        self.message_user(request, f"Lifted {n} entr{'y' if n == 1 else 'ies'}.", messages.SUCCESS)

    actions = ["lift"]


@admin.register(DeviceRegistration)
class DeviceRegistrationAdmin(PlatformScopedAdmin):
    view_only_for_platform_admins = True  # devices register themselves through the API
    list_display = ["device", "device_user", "platform", "application_id", "cloud_message_type", "updated_at"]
    list_filter = ["platform", "cloud_message_type", "application_id"]
    search_fields = ["device__registration_id", "device__name", "device__user__username", "platform__key"]
    raw_id_fields = ["device"]
    autocomplete_fields = ["platform"]
    list_select_related = ["device__user", "platform"]

    @admin.display(description="user", ordering="device__user__username")
    def device_user(self, obj):
        return obj.device.user


# Bulk sends: compose, scheduled jobs with their deliveries, Idempotency-Key records.
from notifications.bulk_scheduled.admin import register as _register_bulk_admin  # noqa: E402

_register_bulk_admin(admin.site)


@admin.register(InboxCounter)
class InboxCounterAdmin(SuperuserOnlyAdmin):
    """Read-only: database triggers keep these exact (see `inbox.inbox_counters_rebuild`)."""

    list_display = ["user", "platform", "unread", "read", "cancelled"]
    list_filter = ["platform"]
    search_fields = ["user__username", "user__email", "platform__key"]
    list_select_related = ["user", "platform"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# Internal tables of the libraries we build on: the operator's alone.
superuser_only(
    admin.site, Group, FCMDevice, PeriodicTask, ClockedSchedule, CrontabSchedule, SolarSchedule, IntervalSchedule
)

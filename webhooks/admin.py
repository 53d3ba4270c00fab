"""Webhook endpoints and their messages in the admin, scoped per platform.

An endpoint's URL passes the same public-address check as in the API; its
secret is made on save and shown on its page (platform admins may read it, as
through the API). Messages are read-only with their attempts inline; the
"replay" actions start a new round of attempts.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from notifications.admin_scoping import PlatformScopedAdmin, PlatformScopedInline
from notifications.errors import InvalidInput
from webhooks import delivery, services
from webhooks.events import EVENT_TYPES
from webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage, secret_generate


class WebhookEndpointForm(forms.ModelForm):
    url = forms.CharField(max_length=2000, help_text="http(s) URL on a public address")
    event_types = forms.MultipleChoiceField(
        choices=[(name, name) for name in EVENT_TYPES], widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["platform", "url", "description", "event_types", "is_active"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            return services.url_clean(url)
        except InvalidInput as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(PlatformScopedAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "platform", "event_list", "is_active", "failing_since", "disabled_at"]
    list_filter = ["platform", "is_active"]
    search_fields = ["url", "description", "platform__key"]
    autocomplete_fields = ["platform"]
    list_select_related = ["platform"]
    readonly_fields = ["signing_secret", "failing_since", "disabled_at", "disabled_reason", "created_at", "updated_at"]
    actions = ["replay_failed", "rotate_secret"]

    @admin.display(description="events")
    def event_list(self, obj):
        return ", ".join(obj.event_types or ())

    @admin.display(description="signing secret")
    def signing_secret(self, obj):
        if obj is None or not obj.pk:
            return "Made when the endpoint is saved."
        return obj.secret or "Unreadable (SECRET_KEY changed): rotate it."

    def save_model(self, request, obj, form, change):
        if not obj.secret_encrypted:
            obj.secret_set(secret_generate())
        if change and "is_active" in form.changed_data and obj.is_active:
            obj.failing_since = obj.disabled_at = None
            obj.disabled_reason = ""
        super().save_model(request, obj, form, change)

    @admin.action(description="Replay failed messages of the selected endpoints")
    def replay_failed(self, request, queryset):
        total = sum(delivery.messages_replay_failed(endpoint=endpoint) for endpoint in queryset)
        self.message_user(request, f"{total} messages queued again.", messages.SUCCESS)

    @admin.action(description="Rotate the signing secret of the selected endpoints")
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            services.endpoint_secret_rotate(endpoint=endpoint)
        self.message_user(request, "New secrets made; receivers must use them from now on.", messages.SUCCESS)


class WebhookAttemptInline(PlatformScopedInline):
    model = WebhookAttempt
    extra = 0
    fields = ["created_at", "status_code", "error", "duration_ms"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookMessage)
class WebhookMessageAdmin(PlatformScopedAdmin):
    view_only_for_platform_admins = True  # written by events; only replayed by hand
    list_display = ["webhook_id", "event_type", "endpoint", "status", "attempts", "last_status_code", "created_at"]
    list_filter = ["platform", "status", "event_type"]
    search_fields = ["event_type", "endpoint__url", "platform__key"]
    list_select_related = ["endpoint", "platform"]
    readonly_fields = [
        "platform",
        "endpoint",
        "event_type",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
    ]
    exclude = ["claimed_until"]
    inlines = [WebhookAttemptInline]
    actions = ["replay"]
    show_full_result_count = False

    @admin.action(description="Replay the selected messages (same webhook-id)")
    def replay(self, request, queryset):
        count = 0
        for message in queryset:
            delivery.message_replay(message=message)
            count += 1
        self.message_user(request, f"{count} messages queued again.", messages.SUCCESS)

"""Admin for templates: edit with a rendered preview, toggle, reset, test-send, and who customised what."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Subquery
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from notifications.admin_scoping import PlatformScopedAdmin, is_operator, platform_ids
from notifications.models import Platform
from notifications.sanitize import sanitize_html
from templates_app import defaults, selectors

# Registers the admin of mentors, learner activity and received events, and of digests.
from templates_app.automation import admin as _automation_admin  # noqa: F401
from templates_app.digests import admin as _digests_admin  # noqa: F401
from templates_app.messages import FieldRenderError
from templates_app.models import (
    FrequencyCap,
    NotificationChannel,
    NotificationTemplate,
    NotificationToggle,
    Spa,
    UserNotificationPreference,
)
from templates_app.services import configs
from templates_app.services import templates as template_services

# A previewed message is addressed to someone: a made-up learner, never saved.
SAMPLE_RECIPIENT = get_user_model()(
    username="amina.tesfaye",
    first_name="Amina",
    last_name="Tesfaye",
    email="amina.tesfaye@example.com",
    timezone="Africa/Addis_Ababa",
)
# The recipient's own variables come from SAMPLE_RECIPIENT, not from placeholders.
RECIPIENT_VARIABLES = {"username", "login_url", "login_path", "recipient_timezone", "unsubscribe_url"}

# Previews of shipped defaults need some platform to fill the §8.2 globals.
EXAMPLE_PLATFORM = Platform(
    key="example",
    name="Example Learning",
    site_name="Example Learning",
    site_url="https://learn.example.com",
    support_email="support@example.com",
    skills_url="https://skills.example.com",
)


def _same_text(submitted: str, stored: str) -> bool:
    # A browser submits a textarea with CRLF line ends and the form strips the
    # ends, so an untouched field comes back changed in those ways only.
    def norm(text: str) -> str:
        return (text or "").replace("\r\n", "\n").strip()

    return norm(submitted) == norm(stored)


class TemplateForm(forms.ModelForm):
    """Compiles every template field before saving; syntax errors name the line, HTML is sanitised."""

    class Meta:
        model = NotificationTemplate
        fields = [
            "platform",
            "type",
            "is_custom",
            *defaults.CONTENT_FIELDS,
            "allowed_channels",
            "spas",
            "available_context",
            "metadata",
            "periodic_config",
            "policy_config",
            "human_support_config",
            "delivery_policy",
        ]

    def clean(self):
        cleaned = super().clean()
        instance = self.instance
        type_ = cleaned.get("type") or instance.type
        values = {f: cleaned[f] for f in defaults.TEMPLATE_FIELDS if f in cleaned and cleaned[f] is not None}
        errors: dict[str, list[str]] = {}
        known = defaults.known_variables(type_, cleaned.get("available_context") or instance.available_context)
        # Fields the author did not change are kept exactly as stored (not re-sanitised).
        current = {f: getattr(instance, f) or "" for f in defaults.TEMPLATE_FIELDS} if instance.pk else None
        if current:
            values = {f: current[f] if _same_text(v, current[f]) else v for f, v in values.items()}
        checked, self.template_warnings = template_services.template_fields_check(
            values, known=known, errors=errors, current=current
        )
        if "delivery_policy" in cleaned:
            problems = configs.delivery_policy_problems(cleaned["delivery_policy"] or None)
            if problems:
                errors["delivery_policy"] = [m for messages in problems.values() for m in messages]
        if errors:
            raise ValidationError(errors)
        cleaned.update(checked)
        return cleaned


class PlatformKindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [("default", "Shipped defaults"), ("copy", "Platform copies"), ("custom", "Custom types")]

    def queryset(self, request, queryset):
        if self.value() == "default":
            return queryset.filter(platform__isnull=True)
        if self.value() == "copy":
            return queryset.filter(platform__isnull=False, is_custom=False)
        if self.value() == "custom":
            return queryset.filter(is_custom=True)
        return queryset


@admin.register(NotificationTemplate)
class NotificationTemplateAdmin(PlatformScopedAdmin):
    shared_when_null = True  # shipped defaults: every platform admin reads them
    form = TemplateForm
    list_display = ["type", "owner", "name", "is_custom", "channels", "drifted", "updated_at"]
    list_filter = [PlatformKindFilter, "platform", "is_custom", "allowed_channels"]
    search_fields = ["type", "name", "platform__key", "message_title", "email_subject"]
    list_select_related = ["platform"]
    autocomplete_fields = ["platform"]
    filter_horizontal = ["spas", "allowed_channels"]
    readonly_fields = ["preview", "content_hash", "next_execution_at", "last_execution_at", "created_at", "updated_at"]
    actions = ["reset_to_default", "enable_types", "disable_types", "test_send"]
    change_list_template = "admin/templates_app/notificationtemplate/change_list.html"
    fieldsets = [
        (None, {"fields": ["platform", "type", "is_custom", "name", "description"]}),
        (
            "Content",
            {
                "fields": [
                    "message_title",
                    "message_body",
                    "short_message_body",
                    "email_subject",
                    "email_from_address",
                    "email_html_template",
                ]
            },
        ),
        ("Delivery", {"fields": ["allowed_channels", "spas", "delivery_policy"]}),
        (
            "Configuration",
            {
                "classes": ["collapse"],
                "fields": [
                    "available_context",
                    "metadata",
                    "periodic_config",
                    "policy_config",
                    "human_support_config",
                    "next_execution_at",
                    "last_execution_at",
                    "content_hash",
                ],
            },
        ),
        ("Preview for a sample learner (Amina Tesfaye)", {"fields": ["preview"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    def get_queryset(self, request):
        shipped = NotificationTemplate.objects.filter(platform__isnull=True, type=OuterRef("type"))
        return (
            super()
            .get_queryset(request)
            .prefetch_related("allowed_channels")
            .annotate(default_hash=Subquery(shipped.values("content_hash")[:1]))
        )

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is None:
            return fields
        fields += ["platform", "type", "is_custom"]
        if obj.platform_id is None:
            # Shipped defaults are code (templates_app/defaults.py); edit a platform's copy instead.
            fields += [f for f in (*defaults.CONTENT_FIELDS, "allowed_channels", "spas") if f not in fields]
            fields += ["available_context", "metadata", "periodic_config", "policy_config", "human_support_config"]
            fields += ["delivery_policy"]
        elif obj.type in defaults.SYSTEM_MANAGED_TYPES:
            fields += list(defaults.SYSTEM_MANAGED_READ_ONLY)
        return fields

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.platform_id is None:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="platform", ordering="platform__key")
    def owner(self, obj):
        return obj.platform.key if obj.platform_id else "— default —"

    @admin.display(description="channels")
    def channels(self, obj):
        return ", ".join(c.name for c in obj.allowed_channels.all())

    @admin.display(description="default changed", boolean=True)
    def drifted(self, obj):
        if obj.platform_id is None or obj.is_custom:
            return None
        return bool(obj.default_hash and obj.default_hash != obj.content_hash)

    @admin.display(description="rendered")
    def preview(self, obj):
        if obj is None or obj.pk is None:
            return "Save to see a preview."
        platform = obj.platform or EXAMPLE_PLATFORM
        effective = selectors.EffectiveTemplate(template=obj, is_enabled=True, default=None)
        td = effective.type_default
        if td:
            sample = dict(td.sample_context)
        else:
            sample = {k: f"[{k}]" for k in obj.available_context if k not in RECIPIENT_VARIABLES}
        try:
            rendered = template_services.template_preview(
                platform=platform, effective=effective, context=sample, user=SAMPLE_RECIPIENT
            )
        except FieldRenderError as exc:
            return format_html('<p style="color:#b91c1c">{}</p>', str(exc))
        parts = []
        for channel, message in rendered.items():
            parts.append(format_html("<h4>{}</h4>", channel))
            if message["title"]:
                parts.append(format_html("<p><strong>{}</strong></p>", message["title"]))
            parts.append(format_html('<pre style="white-space:pre-wrap">{}</pre>', message["body"]))
            if message["html"]:
                # Already sanitised by the pipeline's one sanitiser; shown as the recipient sees it.
                parts.append(
                    format_html(
                        '<div style="border:1px solid #ddd;padding:8px;max-width:640px">{}</div>',
                        mark_safe(sanitize_html(message["html"])),
                    )
                )
        # Every part above is escaped by format_html or sanitised.
        return mark_safe("".join(str(p) for p in parts))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        for warning in getattr(form, "template_warnings", []):
            self.message_user(request, f"{warning['field']}: {warning['message']}", messages.WARNING)

    @admin.action(description="Reset selected platform copies to the default")
    def reset_to_default(self, request, queryset):
        copies = queryset.filter(platform__isnull=False, is_custom=False)
        n = 0
        for template in copies.select_related("platform"):
            n += template_services.template_reset(platform=template.platform, notification_type=template.type)
        skipped = queryset.count() - copies.count()
        self.message_user(request, f"Reset {n} template(s) to the default.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} default or custom template(s) left alone.", messages.WARNING)

    def _toggle(self, request, queryset, enabled: bool):
        rows = queryset.filter(platform__isnull=False).select_related("platform")
        for template in rows:
            template_services.template_toggle(
                platform=template.platform, notification_type=template.type, enabled=enabled, user=request.user
            )
        state = "enabled" if enabled else "disabled"
        self.message_user(request, f"{state.capitalize()} {rows.count()} type(s) for their platform.", messages.SUCCESS)

    @admin.action(description="Enable these types for their platform")
    def enable_types(self, request, queryset):
        self._toggle(request, queryset, True)

    @admin.action(description="Disable these types for their platform")
    def disable_types(self, request, queryset):
        self._toggle(request, queryset, False)

    @admin.action(description="Send a test email of each to me")
    def test_send(self, request, queryset):
        if not request.user.email:
            self.message_user(request, "Your account has no email address.", messages.ERROR)
            return
        for template in queryset.filter(platform__isnull=False).select_related("platform"):
            try:
                ok = template_services.template_test_send(
                    platform=template.platform, notification_type=template.type, user=request.user, context={}
                )
            except FieldRenderError as exc:
                self.message_user(request, f"{template}: {exc}", messages.ERROR)
                continue
            if ok:
                self.message_user(request, f"{template}: test sent to {request.user.email}.", messages.SUCCESS)
            else:
                self.message_user(request, f"{template}: sending failed, check email configuration.", messages.ERROR)
        if queryset.filter(platform__isnull=True).exists():
            self.message_user(request, "Defaults are tested through a platform: pick its copy.", messages.WARNING)

    def get_urls(self):
        return [
            path(
                "customisation/",
                self.admin_site.admin_view(self.customisation_view),
                name="templates_app_customisation",
            ),
            *super().get_urls(),
        ]

    def customisation_view(self, request):
        """Which platforms customised which types: one row per platform, one column per type."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        platforms, types, cells = selectors.customisation_matrix(
            platform_ids=None if is_operator(request) else platform_ids(request)
        )
        change = "admin:templates_app_notificationtemplate_change"
        rows = []
        for platform in platforms:
            row = []
            for type_ in types:
                template = cells.get((platform.pk, type_))
                row.append(reverse(change, args=[template.pk]) if template else "")
            rows.append((platform, row))
        counts = dict(
            self.scope_queryset(request, NotificationTemplate.objects.filter(platform__isnull=False))
            .values_list("type")
            .annotate(n=Count("id"))
            .values_list("type", "n")
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Customised templates per platform",
            "types": [(t, counts.get(t, 0)) for t in types],
            "rows": rows,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/templates_app/customisation.html", context)


@admin.register(NotificationToggle)
class NotificationToggleAdmin(PlatformScopedAdmin):
    list_display = ["type", "platform", "enabled", "updated_by", "updated_at"]
    list_filter = ["enabled", "platform"]
    search_fields = ["type", "platform__key"]
    autocomplete_fields = ["platform"]
    readonly_fields = ["updated_by", "updated_at"]
    actions = ["enable", "disable"]

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Enable")
    def enable(self, request, queryset):
        self.message_user(request, f"Enabled {queryset.update(enabled=True, updated_by=request.user)}.")

    @admin.action(description="Disable")
    def disable(self, request, queryset):
        self.message_user(request, f"Disabled {queryset.update(enabled=False, updated_by=request.user)}.")


@admin.register(NotificationChannel)
class NotificationChannelAdmin(PlatformScopedAdmin):
    platform_lookup = None
    list_display = ["id", "name"]
    search_fields = ["name"]

    def has_add_permission(self, request):
        return False  # channels are the pipeline's; their ids are part of the API

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Spa)
class SpaAdmin(PlatformScopedAdmin):
    platform_lookup = None
    list_display = ["id", "name", "description"]
    search_fields = ["name", "description"]


@admin.register(UserNotificationPreference)
class UserNotificationPreferenceAdmin(PlatformScopedAdmin):
    list_display = ["user", "platform", "notification_type", "channel", "enabled", "updated_at"]
    list_filter = ["enabled", "channel", "platform"]
    search_fields = ["user__username", "user__email", "notification_type"]
    autocomplete_fields = ["user", "platform"]


@admin.register(FrequencyCap)
class FrequencyCapAdmin(PlatformScopedAdmin):
    list_display = ["platform", "channel", "limit", "window", "over_limit", "updated_at"]
    list_filter = ["channel", "window", "over_limit", "platform"]
    search_fields = ["platform__key"]
    autocomplete_fields = ["platform"]
    readonly_fields = ["updated_at"]

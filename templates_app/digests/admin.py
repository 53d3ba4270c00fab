"""Admin screens of digests: each platform's rules, and its buckets with their counts and send times."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from notifications.admin_scoping import PlatformScopedAdmin
from notifications.models import Channel
from templates_app import defaults
from templates_app.digests.rules import rule_validate
from templates_app.models import Cadence, DigestBucket, DigestCadence, DigestRule


class DigestRuleForm(forms.ModelForm):
    notification_type = forms.CharField(
        max_length=100,
        help_text="Types with a shipped digest: " + ", ".join(sorted(defaults.DIGEST_BY_TYPE)) + ".",
    )
    channels = forms.MultipleChoiceField(
        choices=Channel.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Collected into the digest; the others stay live. None ticked: the shipped default's.",
    )

    class Meta:
        model = DigestRule
        fields = [
            "platform",
            "notification_type",
            "enabled",
            "window_minutes",
            "daily_at",
            "timezone",
            "mode",
            "channels",
            "key_context",
            "learner_cadences",
            *defaults.DIGEST_TEMPLATE_FIELDS,
        ]

    learner_cadences = forms.MultipleChoiceField(
        choices=Cadence.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Cadences learners may pick for themselves in their preferences; none: everyone follows this rule.",
    )

    def clean_learner_cadences(self):
        return list(self.cleaned_data["learner_cadences"])

    def clean_channels(self):
        return self.cleaned_data["channels"] or None

    def clean(self):
        cleaned = super().clean()
        rule = DigestRule(**{f: cleaned.get(f) for f in cleaned if f != "platform"})
        try:
            rule_validate(rule)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        return cleaned


@admin.register(DigestRule)
class DigestRuleAdmin(PlatformScopedAdmin):
    form = DigestRuleForm
    list_display = ["notification_type", "platform", "enabled", "window", "mode", "channels", "updated_at"]
    list_filter = ["enabled", "platform"]
    search_fields = ["notification_type", "platform__key"]
    autocomplete_fields = ["platform"]
    fieldsets = [
        (None, {"fields": ["platform", "notification_type", "enabled"]}),
        (
            "Window, key and mode (blank: the shipped default's)",
            {"fields": ["window_minutes", "daily_at", "timezone", "mode", "channels", "key_context"]},
        ),
        ("What learners may choose", {"fields": ["learner_cadences"]}),
        (
            "Digest template (blank: the shipped one; renders with `items` and `count`)",
            {"fields": list(defaults.DIGEST_TEMPLATE_FIELDS), "classes": ["collapse"]},
        ),
    ]

    @admin.display(description="window")
    def window(self, obj):
        if obj.window_minutes:
            return f"{obj.window_minutes} min"
        if obj.daily_at is not None:
            return f"daily {obj.daily_at:%H:%M} {obj.timezone or '(recipient)'}"
        return "(shipped)"


@admin.register(DigestBucket)
class DigestBucketAdmin(PlatformScopedAdmin):
    list_display = ["id", "notification_type", "platform", "user", "address", "status", "count", "window_end"]
    list_filter = ["status", "platform", "notification_type"]
    search_fields = ["digest_key", "user__username", "address"]
    date_hierarchy = "window_end"
    readonly_fields = [f.name for f in DigestBucket._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # written by events and the sweep only


@admin.register(DigestCadence)
class DigestCadenceAdmin(PlatformScopedAdmin):
    list_display = ["user", "notification_type", "cadence", "platform", "updated_at"]
    list_filter = ["cadence", "platform"]
    search_fields = ["user__username", "notification_type"]
    autocomplete_fields = ["user", "platform"]

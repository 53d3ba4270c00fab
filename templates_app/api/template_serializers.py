"""Input validation and response shapes of the templates endpoints (IBL §7.2)."""

from __future__ import annotations

import re

from rest_framework import serializers

from notifications.models import Channel
from templates_app import defaults
from templates_app.api.common import StrictSerializer, _hhmm, _timezone, bounded_context
from templates_app.selectors import MAIN_PLATFORM, EffectiveTemplate
from templates_app.services.configs import ESCALATION_MAX_MINUTES, ESCALATION_TO, FALLBACK_FROM, delivery_policy_view

CUSTOM_TYPE = re.compile(r"^[A-Z][A-Z0-9_]{2,99}$")


# What the OpenAPI schema says of each template field: which are HTML and which are text.
TEXT_TEMPLATE = (
    "Text template: variables are not HTML-escaped and the result is plain text (SMS, push, in-app, "
    "the email's text part), never interpreted as HTML."
)


HTML_TEMPLATE = (
    "HTML template: sanitised with the one allowlist (IBL §8.3) when saved, its variables HTML-escaped "
    "(autoescape) when rendered, and the rendered HTML sanitised again."
)


# --- responses ----------------------------------------------------------------------


def _periodic(e: EffectiveTemplate) -> dict | None:
    config = e.template.periodic_config
    if e.type != "PROACTIVE_LEARNER_NOTIFICATION" or config is None:
        return None
    t = e.template
    out = {**defaults.DEFAULT_PERIODIC_CONFIG, **config}
    out["last_execution_date"] = t.last_execution_at.isoformat() if t.last_execution_at else None
    out["next_execution_date"] = t.next_execution_at.isoformat() if t.next_execution_at else None
    return out


def _config(e: EffectiveTemplate, attribute: str, owner: str, base: dict) -> dict | None:
    value = getattr(e.template, attribute)
    if e.type != owner or value is None:
        return None
    return {**base, **value}


def template_summary(e: EffectiveTemplate) -> dict:
    t = e.template
    return {
        "id": t.api_id,
        "type": t.type,
        "name": t.name,
        "description": t.description,
        "is_inherited": e.is_inherited,
        "source_platform": t.platform.key if t.platform_id else MAIN_PLATFORM,
        "is_enabled": e.is_enabled,
        "can_customize": True,
        "is_custom": t.is_custom,
        "is_critical": e.is_critical,
        "message_title": t.message_title,
        "email_subject": t.email_subject,
        "spas": [s.name for s in t.spas.all()],
        "allowed_channels": e.channel_names(),
        "available_context": e.available_context,
        "default_changed_since_customized": e.default_changed_since_customized,
    }


def template_detail(e: EffectiveTemplate) -> dict:
    t = e.template
    data = template_summary(e)
    data.update(
        {
            "message_body": t.message_body,
            "short_message_body": t.short_message_body,
            "email_from_address": t.email_from_address,
            "email_html_template": t.email_html_template,
            "spas_detail": [{"id": s.pk, "name": s.name, "description": s.description} for s in t.spas.all()],
            "allowed_channels_detail": [{"id": c.pk, "name": c.name} for c in t.allowed_channels.all()],
            "metadata": t.metadata,
            "periodic_config": _periodic(e),
            "policy_config": _config(e, "policy_config", "POLICY_ASSIGNMENT", defaults.DEFAULT_POLICY_CONFIG),
            "human_support_config": _config(
                e, "human_support_config", "HUMAN_SUPPORT_NOTIFICATION", defaults.DEFAULT_HUMAN_SUPPORT_CONFIG
            ),
            "delivery_policy": delivery_policy_view(t.delivery_policy),
            "is_system_managed": e.is_system_managed,
            "read_only_fields": list(defaults.SYSTEM_MANAGED_READ_ONLY) if e.is_system_managed else [],
            "default_template": _default_side(e),
            "created_at": t.created_at.isoformat().replace("+00:00", "Z"),
            "updated_at": t.updated_at.isoformat().replace("+00:00", "Z"),
        }
    )
    return data


def _default_side(e: EffectiveTemplate) -> dict | None:
    """The shipped default's current text, beside a copy it has drifted from."""
    if not e.default_changed_since_customized or e.default is None:
        return None
    d = e.default
    return {
        "id": str(d.pk),
        "name": d.name,
        "description": d.description,
        "message_title": d.message_title,
        "message_body": d.message_body,
        "short_message_body": d.short_message_body,
        "email_subject": d.email_subject,
        "email_from_address": d.email_from_address,
        "email_html_template": d.email_html_template,
        "allowed_channels": [c.name for c in d.allowed_channels.all()],
        "updated_at": d.updated_at.isoformat().replace("+00:00", "Z"),
    }


class ChannelOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class SpaOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()


class TemplateSummaryOut(serializers.Serializer):
    id = serializers.CharField(help_text="UUID; custom types use a `custom_` prefix.")
    type = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    is_inherited = serializers.BooleanField()
    source_platform = serializers.CharField(help_text='The platform whose template this is ("main" for defaults).')
    is_enabled = serializers.BooleanField()
    can_customize = serializers.BooleanField()
    is_custom = serializers.BooleanField()
    is_critical = serializers.BooleanField(help_text="Users cannot opt out of critical types.")
    message_title = serializers.CharField(help_text=TEXT_TEMPLATE)
    email_subject = serializers.CharField(help_text=TEXT_TEMPLATE)
    spas = serializers.ListField(child=serializers.CharField())
    allowed_channels = serializers.ListField(child=serializers.CharField())
    available_context = serializers.DictField(child=serializers.CharField())
    default_changed_since_customized = serializers.BooleanField()


class DeliveryPolicyOut(serializers.Serializer):
    fallback_channels = serializers.DictField(
        child=serializers.ChoiceField(choices=Channel.choices),
        help_text="Channel: the channel its deliveries fall back to when the user cannot be reached on it "
        "(push: no active device or the push refused for good; email/SMS: no address or refused for good).",
    )
    escalation_channel = serializers.CharField(
        allow_blank=True,
        help_text="Channel an in-app notification still unread after the wait is sent on; empty: none.",
    )
    escalation_after_minutes = serializers.IntegerField(allow_null=True)


class TemplateDetailOut(TemplateSummaryOut):
    message_body = serializers.CharField(help_text=TEXT_TEMPLATE)
    short_message_body = serializers.CharField(help_text=TEXT_TEMPLATE)
    email_from_address = serializers.CharField()
    email_html_template = serializers.CharField(help_text=HTML_TEMPLATE)
    spas_detail = SpaOut(many=True)
    allowed_channels_detail = ChannelOut(many=True)
    metadata = serializers.JSONField()
    periodic_config = serializers.JSONField(allow_null=True)
    policy_config = serializers.JSONField(allow_null=True)
    human_support_config = serializers.JSONField(allow_null=True)
    delivery_policy = DeliveryPolicyOut(
        help_text="Channel fallback and escalation of this type on the platform (inherited from the default "
        "until the platform customises the type)."
    )
    is_system_managed = serializers.BooleanField()
    read_only_fields = serializers.ListField(child=serializers.CharField())
    default_template = serializers.JSONField(
        allow_null=True, help_text="The default's current text when it changed after this copy was made."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class WarningOut(serializers.Serializer):
    field = serializers.CharField()
    variable = serializers.CharField()
    line = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


class TemplatePatchOut(TemplateDetailOut):
    warnings = WarningOut(many=True)


# --- PATCH ----------------------------------------------------------------------------


class MentorConfigIn(serializers.Serializer):
    unique_id = serializers.CharField(max_length=200)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    prompt = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")


class PolicyIn(serializers.Serializer):
    role_name = serializers.CharField(max_length=200)
    enabled = serializers.BooleanField(default=True)
    subject = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class TemplatePatchIn(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    message_title = serializers.CharField(max_length=500, required=False, allow_blank=True, help_text=TEXT_TEMPLATE)
    message_body = serializers.CharField(
        required=False, allow_blank=True, max_length=50_000, trim_whitespace=False, help_text=TEXT_TEMPLATE
    )
    short_message_body = serializers.CharField(
        required=False, allow_blank=True, max_length=5_000, trim_whitespace=False, help_text=TEXT_TEMPLATE
    )
    email_subject = serializers.CharField(max_length=500, required=False, allow_blank=True, help_text=TEXT_TEMPLATE)
    email_from_address = serializers.EmailField(required=False, allow_blank=True)
    email_html_template = serializers.CharField(
        required=False, allow_blank=True, max_length=200_000, trim_whitespace=False, help_text=HTML_TEMPLATE
    )
    spa_ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=100)
    channel_ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=100)

    periodic_learner_scope = serializers.ChoiceField(choices=["ACTIVE_LEARNERS", "ALL_LEARNERS"], required=False)
    periodic_report_period_days = serializers.IntegerField(min_value=1, max_value=365, required=False)
    periodic_frequency = serializers.ChoiceField(choices=["DAILY", "WEEKLY", "MONTHLY", "CUSTOM"], required=False)
    periodic_custom_interval_days = serializers.IntegerField(
        min_value=1, max_value=365, required=False, allow_null=True
    )
    periodic_execution_time = serializers.CharField(required=False, validators=[_hhmm])
    periodic_timezone = serializers.CharField(required=False, validators=[_timezone])
    periodic_mentors = MentorConfigIn(many=True, required=False)

    policy_enabled_policies = PolicyIn(many=True, required=False)
    policy_notify_on_assignment = serializers.BooleanField(required=False)
    policy_notify_on_removal = serializers.BooleanField(required=False)

    human_support_recipient_mode = serializers.ChoiceField(
        choices=["platform_admins_and_mentor_owner", "platform_admins_only", "mentor_owner_only", "custom"],
        required=False,
    )
    human_support_custom_recipients = serializers.ListField(
        child=serializers.CharField(max_length=320), required=False, max_length=200
    )

    fallback_channels = serializers.DictField(
        child=serializers.ChoiceField(choices=Channel.choices),
        required=False,
        help_text=f"{{channel: fallback channel}}; keys among {', '.join(FALLBACK_FROM)}. A delivery that cannot "
        "reach the user on its channel (push: no active device or refused for good; email/SMS: no address or "
        "refused for good) is sent once on the fallback channel instead. {} clears.",
    )
    escalation_channel = serializers.ChoiceField(
        choices=[("", "none"), *((c, c) for c in ESCALATION_TO)],
        required=False,
        allow_blank=True,
        help_text="Send this type's in-app notifications that are still unread after escalation_after_minutes "
        'on this channel too; "" turns the escalation off.',
    )
    escalation_after_minutes = serializers.IntegerField(
        min_value=1, max_value=ESCALATION_MAX_MINUTES, required=False, allow_null=True
    )

    acknowledge_default_change = serializers.BooleanField(
        required=False, help_text="Mark the copy as up to date with the current default."
    )

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        for name in ("periodic_mentors", "policy_enabled_policies"):
            if name in values:
                values[name] = [dict(item) for item in values[name]]
        return values


class CustomTypeIn(StrictSerializer):
    type = serializers.RegexField(
        CUSTOM_TYPE, max_length=100, error_messages={"invalid": "Use UPPER_SNAKE_CASE, 3-100 characters."}
    )
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    message_title = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="", help_text=TEXT_TEMPLATE
    )
    message_body = serializers.CharField(
        required=False, allow_blank=True, default="", trim_whitespace=False, help_text=TEXT_TEMPLATE
    )
    short_message_body = serializers.CharField(
        required=False, allow_blank=True, default="", trim_whitespace=False, help_text=TEXT_TEMPLATE
    )
    email_subject = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="", help_text=TEXT_TEMPLATE
    )
    email_from_address = serializers.EmailField(required=False, allow_blank=True, default="")
    email_html_template = serializers.CharField(
        required=False, allow_blank=True, default="", trim_whitespace=False, help_text=HTML_TEMPLATE
    )
    spa_ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=100)
    channel_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_empty=False, max_length=100
    )
    available_context = serializers.DictField(child=serializers.CharField(max_length=500), required=False)
    metadata = serializers.JSONField(required=False)
    is_enabled = serializers.BooleanField(required=False)


class ToggleIn(StrictSerializer):
    allow_notification = serializers.BooleanField()


class ToggleOut(serializers.Serializer):
    type = serializers.CharField()
    is_enabled = serializers.BooleanField()
    platform = serializers.CharField()
    message = serializers.CharField()


class ResetOut(serializers.Serializer):
    message = serializers.CharField()
    deleted = serializers.BooleanField()


class TestIn(StrictSerializer):
    context = serializers.DictField(required=False, default=dict, validators=[bounded_context])


class TestOut(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField()
    recipient = serializers.EmailField(required=False)


class PreviewIn(StrictSerializer):
    context = serializers.DictField(required=False, default=dict, validators=[bounded_context])
    channels = serializers.ListField(child=serializers.ChoiceField(choices=Channel.choices), required=False)
    use_sample_context = serializers.BooleanField(
        default=True, help_text="Fill the type's variables with sample values where `context` does not."
    )
    template = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        help_text="Unsaved template fields to preview instead of the stored ones.",
    )


class RenderedOut(serializers.Serializer):
    title = serializers.CharField(help_text="Text")
    body = serializers.CharField(help_text="Text: never interpreted as HTML")
    html = serializers.CharField(help_text="Sanitised HTML (email)")
    short_message = serializers.CharField(help_text="Text")


class PreviewOut(serializers.Serializer):
    type = serializers.CharField()
    channels = serializers.DictField(child=RenderedOut())
    warnings = WarningOut(many=True)

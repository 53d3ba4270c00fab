"""The configuration blocks of the three system-managed types (IBL §7.2, §9).

PATCH speaks flat, prefixed fields (`periodic_frequency`, `policy_notify_on_removal`,
`human_support_recipient_mode`, ...); the template stores one JSON object per
block. Fields are type-checked by the API serializer; rules that need the merged
block (CUSTOM needs an interval, `custom` mode needs recipients) live here.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils import timezone

from templates_app import defaults
from templates_app.automation.schedule import next_execution
from templates_app.rendering import TemplateError, template_check
from templates_app.selectors import EffectiveTemplate

PROACTIVE = "PROACTIVE_LEARNER_NOTIFICATION"
POLICY = "POLICY_ASSIGNMENT"
HUMAN_SUPPORT = "HUMAN_SUPPORT_NOTIFICATION"

# request field -> (type, config attribute, key in the block)
CONFIG_FIELDS: dict[str, tuple[str, str, str]] = {
    "periodic_learner_scope": (PROACTIVE, "periodic_config", "learner_scope"),
    "periodic_report_period_days": (PROACTIVE, "periodic_config", "report_period_days"),
    "periodic_frequency": (PROACTIVE, "periodic_config", "frequency"),
    "periodic_custom_interval_days": (PROACTIVE, "periodic_config", "custom_interval_days"),
    "periodic_execution_time": (PROACTIVE, "periodic_config", "execution_time"),
    "periodic_timezone": (PROACTIVE, "periodic_config", "timezone"),
    "periodic_mentors": (PROACTIVE, "periodic_config", "mentors"),
    "policy_enabled_policies": (POLICY, "policy_config", "enabled_policies"),
    "policy_notify_on_assignment": (POLICY, "policy_config", "notify_on_assignment"),
    "policy_notify_on_removal": (POLICY, "policy_config", "notify_on_removal"),
    "human_support_recipient_mode": (HUMAN_SUPPORT, "human_support_config", "recipient_mode"),
    "human_support_custom_recipients": (HUMAN_SUPPORT, "human_support_config", "custom_recipients"),
}
_BASE = {
    "periodic_config": defaults.DEFAULT_PERIODIC_CONFIG,
    "policy_config": defaults.DEFAULT_POLICY_CONFIG,
    "human_support_config": defaults.DEFAULT_HUMAN_SUPPORT_CONFIG,
}


def config_field_errors(notification_type: str, fields: set[str]) -> dict[str, list[str]]:
    """Config fields sent for a type they do not belong to."""
    errors = {}
    for name in sorted(fields):
        owner = CONFIG_FIELDS.get(name)
        if owner and owner[0] != notification_type:
            errors[name] = [f"{name} only applies to {owner[0]}."]
    return errors


def _check_block(attribute: str, block: dict, errors: dict[str, list[str]]) -> None:
    if attribute == "periodic_config":
        if block.get("frequency") == "CUSTOM" and not block.get("custom_interval_days"):
            errors.setdefault("periodic_custom_interval_days", []).append(
                "Required (1-365) when periodic_frequency is CUSTOM."
            )
    elif attribute == "human_support_config":
        if block.get("recipient_mode") == "custom" and not block.get("custom_recipients"):
            errors.setdefault("human_support_custom_recipients", []).append(
                "At least one recipient is required when human_support_recipient_mode is custom."
            )
    elif attribute == "policy_config":
        for index, policy in enumerate(block.get("enabled_policies") or []):
            subject = policy.get("subject") or ""
            try:
                template_check(subject, known=defaults.known_variables(POLICY))
            except TemplateError as exc:
                errors.setdefault("policy_enabled_policies", []).append(f"[{index}].subject: {exc}")


def config_apply(effective: EffectiveTemplate, own, changes: dict) -> None:
    """Merge the config fields of `changes` into `own` (the platform's copy)."""
    touched: dict[str, dict] = {}
    for name, value in changes.items():
        owner = CONFIG_FIELDS.get(name)
        if owner is None:
            continue
        _type, attribute, key = owner
        if attribute not in touched:
            current = getattr(own, attribute)
            touched[attribute] = dict(current if current is not None else _BASE[attribute])
        touched[attribute][key] = value
    errors: dict[str, list[str]] = {}
    for attribute, block in touched.items():
        _check_block(attribute, block, errors)
    if errors:
        raise ValidationError(errors)
    for attribute, block in touched.items():
        setattr(own, attribute, block)
    if "periodic_config" in touched:
        own.next_execution_at = next_execution(own.periodic_config, now=timezone.now())

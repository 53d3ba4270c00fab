"""The configuration blocks of the three system-managed types (IBL §7.2, §9).

PATCH speaks flat, prefixed fields (`periodic_frequency`, `policy_notify_on_removal`,
`human_support_recipient_mode`, ...); the template stores one JSON object per
block. Fields are type-checked by the API serializer; rules that need the merged
block (CUSTOM needs an interval, `custom` mode needs recipients) live here.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils import timezone

from notifications.channels import Channel
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


# --- delivery policy: channel fallback and escalation (notifications.pipeline.fallback) -------------

# PATCH fields of the delivery policy; the template stores them as one block,
# {"fallback": {channel: channel}, "escalation": {"channel": ..., "after_minutes": N}}.
DELIVERY_FIELDS = ("fallback_channels", "escalation_channel", "escalation_after_minutes")
# Channels whose deliveries can fail and so fall back (an in-app row is the delivery).
FALLBACK_FROM = (Channel.PUSH.value, Channel.SMS.value, Channel.EMAIL.value)
ESCALATION_TO = (Channel.EMAIL.value, Channel.SMS.value, Channel.PUSH.value)
ESCALATION_MAX_MINUTES = 7 * 24 * 60


def delivery_policy_view(policy: dict | None) -> dict:
    """The block as the API shows it (flat, like the PATCH fields)."""
    policy = policy or {}
    escalation = policy.get("escalation") or {}
    return {
        "fallback_channels": dict(policy.get("fallback") or {}),
        "escalation_channel": escalation.get("channel", ""),
        "escalation_after_minutes": escalation.get("after_minutes"),
    }


def delivery_policy_problems(policy: dict | None) -> dict[str, list[str]]:
    """What is wrong with a stored-format block (the admin's JSON and merged PATCHes alike)."""
    errors: dict[str, list[str]] = {}
    if policy is None:
        return errors
    if not isinstance(policy, dict) or set(policy) - {"fallback", "escalation"}:
        return {"delivery_policy": ['An object with "fallback" and/or "escalation".']}
    fallback = policy.get("fallback") or {}
    if not isinstance(fallback, dict) or len(fallback) > len(FALLBACK_FROM):
        errors.setdefault("fallback_channels", []).append(
            f"An object of channel: fallback channel, keys among {', '.join(FALLBACK_FROM)}."
        )
    else:
        for channel, to in fallback.items():
            if channel not in FALLBACK_FROM:
                errors.setdefault("fallback_channels", []).append(
                    f"{channel!r} cannot fall back: use one of {', '.join(FALLBACK_FROM)} "
                    "(an in-app notification is delivered when written; use an escalation)."
                )
            elif to not in Channel.values or to == channel:
                errors.setdefault("fallback_channels", []).append(
                    f"{channel} falls back to {to!r}: use another of {', '.join(Channel.values)}."
                )
    escalation = policy.get("escalation")
    if escalation:
        if not isinstance(escalation, dict) or set(escalation) - {"channel", "after_minutes"}:
            errors.setdefault("escalation_channel", []).append('An object with "channel" and "after_minutes".')
            return errors
        if escalation.get("channel") not in ESCALATION_TO:
            errors.setdefault("escalation_channel", []).append(f"Use one of {', '.join(ESCALATION_TO)}.")
        minutes = escalation.get("after_minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= ESCALATION_MAX_MINUTES:
            errors.setdefault("escalation_after_minutes", []).append(
                f"Required with escalation_channel: whole minutes, 1 to {ESCALATION_MAX_MINUTES}."
            )
    return errors


def delivery_policy_merge(current: dict | None, changes: dict) -> dict | None:
    """The block after a PATCH's delivery fields (omitted fields keep their value; "" or {} clears)."""
    if not any(name in changes for name in DELIVERY_FIELDS):
        return current
    view = delivery_policy_view(current)
    view.update({name: changes[name] for name in DELIVERY_FIELDS if name in changes})
    block: dict = {}
    if view["fallback_channels"]:
        block["fallback"] = dict(view["fallback_channels"])
    if view["escalation_channel"]:
        block["escalation"] = {"channel": view["escalation_channel"], "after_minutes": view["escalation_after_minutes"]}
    elif view["escalation_after_minutes"] is not None and "escalation_after_minutes" in changes:
        block["escalation"] = {"channel": "", "after_minutes": view["escalation_after_minutes"]}
    return block

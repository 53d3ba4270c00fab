"""Reads: which template and toggle apply to a platform, and what a user opted out of.

Inheritance (IBL §5, §8.1) is resolved here and nowhere else: a platform's copy
wins over the shipped default; custom types exist only as platform rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass

from django.db.models import Prefetch, Q, QuerySet

from notifications.models import Platform
from notifications.pipeline.policies import Policy
from templates_app import defaults
from templates_app.models import (
    ALL_TYPES,
    NotificationChannel,
    NotificationTemplate,
    NotificationToggle,
    Spa,
    UserNotificationPreference,
)

# How responses name the owner of the shipped defaults ("default from main platform").
MAIN_PLATFORM = "main"


@dataclass
class EffectiveTemplate:
    """The template a platform uses for one type, and how it came to be."""

    template: NotificationTemplate
    is_enabled: bool
    # The shipped default of this type (None for custom types); for a copy it
    # is the current default, to compare against.
    default: NotificationTemplate | None

    @property
    def type(self) -> str:
        return self.template.type

    @property
    def is_inherited(self) -> bool:
        return self.template.platform_id is None

    @property
    def type_default(self) -> defaults.TypeDefault | None:
        return defaults.BY_TYPE.get(self.template.type)

    @property
    def is_system_managed(self) -> bool:
        return self.template.type in defaults.SYSTEM_MANAGED_TYPES

    @property
    def is_critical(self) -> bool:
        return self.template.type in defaults.CRITICAL_TYPES

    @property
    def available_context(self) -> dict:
        td = self.type_default
        return dict(td.available_context) if td else dict(self.template.available_context)

    @property
    def default_changed_since_customized(self) -> bool:
        if self.is_inherited or self.default is None:
            return False
        return self.template.content_hash != self.default.content_hash

    def channel_names(self) -> list[str]:
        return [c.name for c in self.template.allowed_channels.all()]


def _with_relations(qs: QuerySet[NotificationTemplate]) -> QuerySet[NotificationTemplate]:
    return qs.select_related("platform").prefetch_related(
        Prefetch("spas", queryset=Spa.objects.order_by("id")),
        Prefetch("allowed_channels", queryset=NotificationChannel.objects.order_by("id")),
    )


def toggles_for(*, platform: Platform) -> dict[str, bool]:
    return dict(NotificationToggle.objects.filter(platform=platform).values_list("type", "enabled"))


def _default_enabled(notification_type: str) -> bool:
    td = defaults.BY_TYPE.get(notification_type)
    return td.enabled_by_default if td else True


def type_enabled(*, platform: Platform, notification_type: str) -> bool:
    toggle = NotificationToggle.objects.filter(platform=platform, type=notification_type).first()
    return toggle.enabled if toggle else _default_enabled(notification_type)


def default_templates() -> dict[str, NotificationTemplate]:
    return {t.type: t for t in _with_relations(NotificationTemplate.objects.filter(platform__isnull=True))}


def templates_for_platform(*, platform: Platform) -> list[EffectiveTemplate]:
    """Every template the platform sees: system types in §6 order, then its custom types."""
    shipped = default_templates()
    own = {t.type: t for t in _with_relations(NotificationTemplate.objects.filter(platform=platform))}
    toggles = toggles_for(platform=platform)
    result = []
    for type_ in defaults.SYSTEM_TYPES:
        default = shipped.get(type_)
        template = own.get(type_) or default
        if template is None:  # defaults not synced yet (migrate runs the sync)
            continue
        result.append(
            EffectiveTemplate(
                template=template, is_enabled=toggles.get(type_, _default_enabled(type_)), default=default
            )
        )
    custom = sorted((t for t in own.values() if t.is_custom), key=lambda t: (t.created_at, t.type))
    for template in custom:
        result.append(EffectiveTemplate(template=template, is_enabled=toggles.get(template.type, True), default=None))
    return result


def template_for_type(*, platform: Platform, notification_type: str) -> EffectiveTemplate | None:
    """The template the platform uses for `notification_type`, or None for an unknown type."""
    rows = list(
        _with_relations(
            NotificationTemplate.objects.filter(type=notification_type, platform__isnull=True)
            | NotificationTemplate.objects.filter(type=notification_type, platform=platform)
        )
    )
    own = next((t for t in rows if t.platform_id == platform.pk), None)
    default = next((t for t in rows if t.platform_id is None), None)
    if own is None and default is None:
        return None
    template = own or default
    return EffectiveTemplate(
        template=template,
        is_enabled=type_enabled(platform=platform, notification_type=notification_type),
        default=default,
    )


def template_by_id(*, platform: Platform, template_id: str) -> EffectiveTemplate | None:
    """Look a template up by the id the API shows (a UUID, or `custom_<uuid>`)."""
    raw = str(template_id).removeprefix("custom_")
    try:
        pk = uuid.UUID(raw)
    except ValueError:
        return None
    template = NotificationTemplate.objects.filter(pk=pk).first()
    if template is None or template.platform_id not in (None, platform.pk):
        return None
    # The id of a default the platform has since customised leads to its copy:
    # that is the template the platform uses for the type.
    return template_for_type(platform=platform, notification_type=template.type)


def channels_by_id() -> dict[int, str]:
    return dict(NotificationChannel.objects.values_list("id", "name"))


def channel_records() -> list[NotificationChannel]:
    return list(NotificationChannel.objects.order_by("id"))


def spa_records() -> list[Spa]:
    return list(Spa.objects.order_by("id"))


def customisation_matrix(
    *, platform_ids: Collection[int] | None = None
) -> tuple[list[Platform], list[str], dict[tuple[int, str], NotificationTemplate]]:
    """Which platforms customised which types (for the admin overview); `platform_ids` limits it."""
    copies = NotificationTemplate.objects.filter(platform__isnull=False).select_related("platform")
    if platform_ids is not None:
        copies = copies.filter(platform__in=platform_ids)
    cells = {(t.platform_id, t.type): t for t in copies}
    platforms = list(Platform.objects.filter(pk__in={p for p, _ in cells}).order_by("key"))
    types = list(defaults.SYSTEM_TYPES) + sorted({t for _, t in cells if t not in defaults.BY_TYPE})
    return platforms, types, cells


def effective_choice(rows: list[UserNotificationPreference], *, notification_type: str, channel: str) -> bool:
    """Most specific wins: type+channel, type, "*"+channel, "*"; on when nothing is set."""
    if notification_type in defaults.CRITICAL_TYPES:
        return True
    index = {(r.notification_type, r.channel): r.enabled for r in rows}
    for key in ((notification_type, channel), (notification_type, ""), (ALL_TYPES, channel), (ALL_TYPES, "")):
        if key in index:
            return index[key]
    return True


def preference_allows(*, platform: Platform, user, notification_type: str, channel: str) -> bool:
    """Whether `user` accepts `notification_type` on `channel` (critical types always pass)."""
    if user is None:
        return True
    rows = list(
        UserNotificationPreference.objects.filter(
            platform=platform, user=user, notification_type__in={notification_type, ALL_TYPES}
        )
    )
    return effective_choice(rows, notification_type=notification_type, channel=channel)


def preferences_for(*, platform: Platform, user) -> list[UserNotificationPreference]:
    return list(UserNotificationPreference.objects.filter(platform=platform, user=user))


def delivery_policies(*, platform_id: int, notification_types: Collection[str]) -> dict[str, Policy]:
    """The delivery pipeline's policy lookup: each type's fallback and escalation on the platform.

    Resolved like every template setting: the platform's copy wins over the
    shipped default. One query for the types asked about; types without a
    policy are left out.
    """
    rows = (
        NotificationTemplate.objects.filter(type__in=list(notification_types))
        .filter(Q(platform_id=platform_id) | Q(platform__isnull=True))
        .values_list("platform_id", "type", "delivery_policy")
    )
    chosen: dict[str, dict | None] = {}
    for _owner, type_, policy in sorted(rows, key=lambda row: row[0] is not None):
        chosen[type_] = policy  # the platform's copy (sorted last) wins
    found = {}
    for type_, policy in chosen.items():
        if not policy:
            continue
        escalation = policy.get("escalation") or {}
        minutes = escalation.get("after_minutes")
        found[type_] = Policy(
            fallback=dict(policy.get("fallback") or {}),
            escalation_channel=escalation.get("channel") or "",
            escalation_after_seconds=int(minutes) * 60 if minutes else None,
        )
    return found

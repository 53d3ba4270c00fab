"""Writes on templates: syncing the shipped defaults, copy-on-write, toggle, reset, test-send."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.core.management.color import no_style
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from notifications.models import Channel, Platform
from notifications.pipeline import Recipient, notification_send
from templates_app import defaults, selectors
from templates_app.automation.schedule import next_execution
from templates_app.messages import platform_globals, renderer_for
from templates_app.models import NotificationChannel, NotificationTemplate, NotificationToggle, Spa
from templates_app.rendering import TemplateError, template_check
from templates_app.sanitize import sanitize_template_source
from templates_app.selectors import EffectiveTemplate
from templates_app.services import configs
from templates_app.services.configs import config_apply, config_field_errors

logger = logging.getLogger(__name__)


class TemplateNotFound(Exception):
    pass


# --- defaults ---------------------------------------------------------------------


def _default_row_changed(row: NotificationTemplate, td: defaults.TypeDefault) -> bool:
    return (
        row.content_hash != td.content_hash()
        or row.available_context != td.available_context
        or row.periodic_config != td.periodic_config
        or row.policy_config != td.policy_config
        or row.human_support_config != td.human_support_config
        or row.delivery_policy != td.delivery_policy
    )


@transaction.atomic
def defaults_sync(*, progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Write channels, SPAs and the shipped default templates from `defaults.py`.

    Idempotent; only rows whose content changed in code are rewritten, so
    every platform still inheriting a default sees the new text at once.
    """
    for pk, name in defaults.CHANNELS:
        NotificationChannel.objects.update_or_create(pk=pk, defaults={"name": name})
    inserted_spa = False
    for pk, name, description in defaults.SPAS:
        spa = Spa.objects.filter(name=name).first()
        if spa is None:
            free = not Spa.objects.filter(pk=pk).exists()
            Spa.objects.create(pk=pk if free else None, name=name, description=description)
            inserted_spa = inserted_spa or free
        elif spa.description != description:
            Spa.objects.filter(pk=spa.pk).update(description=description)
    if inserted_spa:
        # Explicit ids do not advance PostgreSQL's sequence; SPAs added later in the admin need it.
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [Spa]):
                cursor.execute(sql)

    channels = {c.name: c for c in NotificationChannel.objects.all()}
    spas = {s.name: s for s in Spa.objects.all()}
    existing = {t.type: t for t in NotificationTemplate.objects.filter(platform__isnull=True)}
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for td in defaults.TYPES:
        if progress:
            progress(td.type)
        row = existing.get(td.type)
        if row is not None and not _default_row_changed(row, td):
            counts["unchanged"] += 1
            continue
        if row is None:
            row = NotificationTemplate(platform=None, type=td.type)
            counts["created"] += 1
        else:
            counts["updated"] += 1
        for field in defaults.CONTENT_FIELDS:
            setattr(row, field, getattr(td, field))
        row.available_context = dict(td.available_context)
        row.periodic_config = td.periodic_config
        row.policy_config = td.policy_config
        row.human_support_config = td.human_support_config
        row.delivery_policy = td.delivery_policy
        row.content_hash = td.content_hash()
        row.save()
        row.allowed_channels.set([channels[c] for c in td.channels])
        row.spas.set([spas[s] for s in td.spas])
    return counts


def sync_defaults_after_migrate(sender=None, **kwargs) -> None:
    """post_migrate hook: defaults follow the code on every deploy (and in every test database)."""
    defaults_sync()


# --- validation ---------------------------------------------------------------------


def _known(effective: EffectiveTemplate) -> set[str]:
    return defaults.known_variables(effective.type, effective.available_context)


def template_fields_check(
    values: dict[str, str],
    *,
    known: set[str],
    errors: dict[str, list[str]],
    current: dict[str, str] | None = None,
) -> tuple[dict[str, str], list[dict]]:
    """Compile each template field; syntax errors go into `errors`, unknown variables come back as warnings.

    Returns the values to store (HTML sanitised) and the warnings. A field
    whose value is the one stored (`current`) is returned exactly as stored:
    saving a form or PATCH that did not change a template must not rewrite it.
    """
    current = current or {}
    cleaned: dict[str, str] = {}
    warnings: list[dict] = []
    for field, value in values.items():
        if field not in defaults.TEMPLATE_FIELDS:
            cleaned[field] = value
            continue
        if field in current and value == (current[field] or ""):
            pass  # as stored: not sanitised again
        elif defaults.TEMPLATE_FIELDS[field]:
            value = sanitize_template_source(value)
        try:
            found = template_check(value, known=known)
        except TemplateError as exc:
            where = f"Template syntax error on line {exc.line}: " if exc.line else "Template syntax error: "
            errors.setdefault(field, []).append(where + exc.message)
            continue
        cleaned[field] = value
        warnings.extend({"field": field, **w} for w in found)
    return cleaned, warnings


def _raise(errors: dict[str, list[str]]) -> None:
    if errors:
        raise ValidationError(errors)


# --- copy-on-write --------------------------------------------------------------------


def _copy_of(default: NotificationTemplate, *, platform: Platform) -> NotificationTemplate:
    """The platform's own copy of a default: content, channels and SPAs (IBL §8.1)."""
    copy = NotificationTemplate(platform=platform, type=default.type, is_custom=False)
    for field in defaults.CONTENT_FIELDS:
        setattr(copy, field, getattr(default, field))
    copy.available_context = {}
    copy.metadata = dict(default.metadata)
    copy.periodic_config = dict(default.periodic_config) if default.periodic_config is not None else None
    copy.policy_config = dict(default.policy_config) if default.policy_config is not None else None
    copy.human_support_config = dict(default.human_support_config) if default.human_support_config is not None else None
    copy.delivery_policy = dict(default.delivery_policy) if default.delivery_policy is not None else None
    copy.content_hash = default.content_hash
    if copy.periodic_config is not None:
        # A periodic type is scheduled from the moment the platform has its own copy.
        copy.next_execution_at = next_execution(
            {**defaults.DEFAULT_PERIODIC_CONFIG, **copy.periodic_config}, now=timezone.now()
        )
    copy.save()
    copy.allowed_channels.set(default.allowed_channels.all())
    copy.spas.set(default.spas.all())
    return copy


def _lock_platform(platform: Platform) -> None:
    # Serialises template writes of one platform, so two first edits racing
    # each other cannot both create a copy.
    Platform.objects.select_for_update().filter(pk=platform.pk).first()


def template_customize(
    *,
    platform: Platform,
    notification_type: str,
    changes: dict,
    acknowledge_default: bool = False,
) -> tuple[EffectiveTemplate, list[dict]]:
    """PATCH: copy the default on the first edit, then apply `changes` to the copy.

    `changes` holds content fields, `spa_ids`/`channel_ids`, and already
    validated, prefixed config fields (`periodic_*`, `policy_*`,
    `human_support_*`) which `configs.config_apply` merges, and the delivery
    policy's fields (`fallback_channels`, `escalation_*`). Raises
    TemplateNotFound or ValidationError (field -> messages); writes nothing
    unless everything is valid. Returns the template and warnings.
    """
    effective = selectors.template_for_type(platform=platform, notification_type=notification_type)
    if effective is None:
        raise TemplateNotFound(notification_type)
    errors: dict[str, list[str]] = {}
    if effective.is_system_managed:
        for field in defaults.SYSTEM_MANAGED_READ_ONLY:
            if field in changes:
                errors.setdefault(field, []).append(
                    f"{field} is read-only for {notification_type}: only configuration fields of this "
                    "system-managed type can be edited."
                )
    for field, messages in config_field_errors(notification_type, set(changes)).items():
        errors.setdefault(field, []).extend(messages)
    content = {k: v for k, v in changes.items() if k in defaults.CONTENT_FIELDS}
    stored = {f: getattr(effective.template, f) for f in defaults.TEMPLATE_FIELDS}
    cleaned, warnings = template_fields_check(content, known=_known(effective), errors=errors, current=stored)
    spa_ids = changes.get("spa_ids")
    channel_ids = changes.get("channel_ids")
    spas = channels = None
    if spa_ids is not None:
        spas = list(Spa.objects.filter(pk__in=spa_ids))
        missing = sorted(set(spa_ids) - {s.pk for s in spas})
        if missing:
            errors.setdefault("spa_ids", []).append(f"Unknown SPA ids: {missing}")
    if channel_ids is not None:
        channels = list(NotificationChannel.objects.filter(pk__in=channel_ids))
        missing = sorted(set(channel_ids) - {c.pk for c in channels})
        if missing:
            errors.setdefault("channel_ids", []).append(f"Unknown channel ids: {missing}")
        elif not channels:
            errors.setdefault("channel_ids", []).append("A template needs at least one channel.")
    delivery_policy = configs.delivery_policy_merge(effective.template.delivery_policy, changes)
    for field, messages in configs.delivery_policy_problems(delivery_policy).items():
        errors.setdefault(field, []).extend(messages)
    _raise(errors)

    for attempt in range(2):
        try:
            with transaction.atomic():
                _lock_platform(platform)
                own = NotificationTemplate.objects.filter(platform=platform, type=notification_type).first()
                if own is None:
                    own = _copy_of(effective.template, platform=platform)
                for field, value in cleaned.items():
                    setattr(own, field, value)
                config_apply(effective, own, changes)
                if any(name in changes for name in configs.DELIVERY_FIELDS):
                    own.delivery_policy = delivery_policy
                if acknowledge_default and effective.default is not None:
                    own.content_hash = effective.default.content_hash
                own.save()
                if spas is not None:
                    own.spas.set(spas)
                if channels is not None:
                    own.allowed_channels.set(channels)
            break
        except IntegrityError:
            # Another first edit created the copy between our look and our insert
            # (databases without row locks); edit that copy instead.
            if attempt:
                raise
    result = selectors.template_for_type(platform=platform, notification_type=notification_type)
    return result, warnings


def template_toggle(*, platform: Platform, notification_type: str, enabled: bool, user=None) -> bool:
    """Switch a type on or off for the platform; template content is not touched."""
    if selectors.template_for_type(platform=platform, notification_type=notification_type) is None:
        raise TemplateNotFound(notification_type)
    NotificationToggle.objects.update_or_create(
        platform=platform,
        type=notification_type,
        defaults={"enabled": enabled, "updated_by": user if user is not None and user.is_authenticated else None},
    )
    return enabled


def template_reset(*, platform: Platform, notification_type: str) -> bool:
    """Delete the platform's copy; True when there was one. The toggle stays as it is."""
    effective = selectors.template_for_type(platform=platform, notification_type=notification_type)
    if effective is None:
        raise TemplateNotFound(notification_type)
    if effective.template.is_custom:
        raise ValidationError(
            {"type": ["Custom notification types have no default to reset to; delete the type instead."]}
        )
    deleted, _ = NotificationTemplate.objects.filter(
        platform=platform, type=notification_type, is_custom=False
    ).delete()
    return deleted > 0


# --- custom types -------------------------------------------------------------------


def custom_type_create(*, platform: Platform, data: dict) -> tuple[EffectiveTemplate, list[dict]]:
    """A platform's own notification type, with its own template and variables."""
    type_ = data["type"]
    errors: dict[str, list[str]] = {}
    if type_ in defaults.BY_TYPE:
        errors["type"] = [f"{type_} is a system notification type; customise it with PATCH instead."]
    elif NotificationTemplate.objects.filter(platform=platform, type=type_).exists():
        errors["type"] = [f"This platform already has a notification type {type_}."]
    known = defaults.known_variables(type_, data.get("available_context") or {})
    content = {k: data[k] for k in defaults.CONTENT_FIELDS if k in data}
    cleaned, warnings = template_fields_check(content, known=known, errors=errors)
    channel_ids = data.get("channel_ids") or [pk for pk, name in defaults.CHANNELS if name == Channel.IN_APP]
    channels = list(NotificationChannel.objects.filter(pk__in=channel_ids))
    if len(channels) != len(set(channel_ids)):
        errors.setdefault("channel_ids", []).append(
            f"Unknown channel ids: {sorted(set(channel_ids) - {c.pk for c in channels})}"
        )
    spa_ids = data.get("spa_ids") or []
    spas = list(Spa.objects.filter(pk__in=spa_ids))
    if len(spas) != len(set(spa_ids)):
        errors.setdefault("spa_ids", []).append(f"Unknown SPA ids: {sorted(set(spa_ids) - {s.pk for s in spas})}")
    _raise(errors)
    with transaction.atomic():
        _lock_platform(platform)
        template = NotificationTemplate(
            platform=platform,
            type=type_,
            is_custom=True,
            available_context=data.get("available_context") or {},
            metadata=data.get("metadata") or {},
            **cleaned,
        )
        template.save()
        template.allowed_channels.set(channels)
        template.spas.set(spas)
        if "is_enabled" in data:
            NotificationToggle.objects.update_or_create(
                platform=platform, type=type_, defaults={"enabled": bool(data["is_enabled"])}
            )
    return selectors.template_for_type(platform=platform, notification_type=type_), warnings


def custom_type_delete(*, platform: Platform, notification_type: str) -> None:
    effective = selectors.template_for_type(platform=platform, notification_type=notification_type)
    if effective is None:
        raise TemplateNotFound(notification_type)
    if not effective.template.is_custom:
        raise ValidationError({"type": ["Only custom notification types can be deleted; reset a system type instead."]})
    with transaction.atomic():
        effective.template.delete()
        NotificationToggle.objects.filter(platform=platform, type=notification_type).delete()


# --- preview and test-send ---------------------------------------------------------------


def template_preview(
    *, platform: Platform, effective: EffectiveTemplate, context: dict, user=None, channels: list[str] | None = None
) -> dict:
    """Render every channel's message without sending; raises FieldRenderError."""
    channels = channels or effective.channel_names() or [Channel.EMAIL]
    render = renderer_for(platform=platform, channels=channels, template=effective.template, context=context)
    recipient = Recipient(user_id=user.pk if user is not None else None)
    out = {}
    for channel in channels:
        msg = render(recipient, channel, user)
        out[channel] = {"title": msg.title, "body": msg.body, "html": msg.html, "short_message": msg.short_message}
    return out


def test_context(*, platform: Platform, user, context: dict | None) -> dict:
    """IBL §7.2 test: `username`, `site_name`, `course_name`, `platform_key`, then the request's `context`."""
    globals_ = platform_globals(platform)
    return {
        "username": user.username,
        "site_name": globals_["site_name"],
        "course_name": "Sample Course",
        "platform_key": platform.key,
        **(context or {}),
    }


def template_test_send(*, platform: Platform, notification_type: str, user, context: dict | None) -> bool:
    """Render the template and email it to the requesting admin; True when the email went out.

    Raises TemplateNotFound, or FieldRenderError when the template cannot render.
    """
    effective = selectors.template_for_type(platform=platform, notification_type=notification_type)
    if effective is None:
        raise TemplateNotFound(notification_type)
    render = renderer_for(
        platform=platform,
        channels=[Channel.EMAIL],
        template=effective.template,
        context=test_context(platform=platform, user=user, context=context),
    )
    # Rendered for the admin's account (their variables and unsubscribe link)...
    message = render(Recipient(user_id=user.pk), Channel.EMAIL, user)
    # ...and sent to a bare address, not the account: a test is not an inbox entry,
    # and an admin's opt-outs must not swallow their own test.
    try:
        result = notification_send(
            platform=platform,
            source=f"template-test:{uuid.uuid4()}",
            channels=[Channel.EMAIL],
            recipients=[Recipient(address=user.email)],
            message=message,
        )
    except Exception:
        logger.exception("test send of %s for %s failed", notification_type, platform.key)
        return False
    return result.sent > 0

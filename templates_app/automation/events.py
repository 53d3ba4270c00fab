"""Automatic notifications: a platform event, through the platform's template, into the pipeline.

For each event (IBL §2, "How Notifications Are Generated"): is the type enabled
for the platform, which channels its template allows, which template applies
(the platform's copy or the inherited default), who receives it. Then every
recipient's message is rendered first — a template that cannot render fails
the event before anything is written — and `notification_send` delivers.
"""

from __future__ import annotations

import hashlib
import json
import operator
import uuid
from dataclasses import dataclass, field
from functools import partial, reduce

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q

from notifications.models import Platform
from notifications.pipeline import Recipient, SendResult, eligibility, notification_send
from notifications.selectors import platform_members
from templates_app import defaults, selectors
from templates_app.messages import platform_globals, rendered_ahead, renderer_for
from templates_app.models import EventStatus, Mentor, NotificationEvent
from templates_app.rendering import TemplateError, render
from templates_app.selectors import EffectiveTemplate
from templates_app.services.configs import HUMAN_SUPPORT, POLICY


class EventConflict(Exception):
    pass


@dataclass
class EventRecipient:
    user: object | None = None
    address: str = ""
    context: dict = field(default_factory=dict)

    def key(self) -> str:
        return f"user:{self.user.pk}" if self.user is not None else f"email:{self.address.lower()}"

    def recipient(self) -> Recipient:
        if self.user is not None:
            return Recipient(user_id=self.user.pk, context=self.context)
        return Recipient(address=self.address, context=self.context)


def _max_recipients() -> int:
    return getattr(settings, "NOTIFY_EVENT_MAX_RECIPIENTS", 1000)


def recipients_resolve(*, platform: Platform, specs: list) -> tuple[list[EventRecipient], list[str]]:
    """Usernames, user ids and emails -> the platform's users (or bare addresses).

    A spec is an int (user id), a string (an email when it has "@", else a
    username) or an object with one of `user_id`/`username`/`email` and an
    optional per-recipient `context`. Users who are not active members of the
    platform are reported as unresolved, never reached.
    """
    members = platform_members(platform=platform)
    ids, names, emails = set(), set(), set()
    parsed = []
    for spec in specs:
        context = {}
        if isinstance(spec, dict):
            context = spec.get("context") or {}
            if spec.get("user_id") is not None:
                kind, value = "id", spec["user_id"]
            elif spec.get("username"):
                kind, value = "username", str(spec["username"])
            else:
                kind, value = "email", str(spec.get("email") or "")
        elif isinstance(spec, int) and not isinstance(spec, bool):
            kind, value = "id", spec
        else:
            value = str(spec).strip()
            kind = "email" if "@" in value else "username"
        if kind == "email":
            value = value.strip().lower()
            emails.add(value)
        elif kind == "username":
            names.add(value)
        else:
            ids.add(value)
        parsed.append((kind, value, context))
    by_id = {u.pk: u for u in members.filter(pk__in=ids)} if ids else {}
    by_name = {u.username: u for u in members.filter(username__in=names)} if names else {}
    by_email: dict[str, object] = {}
    if emails:
        for u in members.filter(reduce(operator.or_, (Q(email__iexact=e) for e in emails))).order_by("pk"):
            by_email.setdefault(u.email.lower(), u)
    resolved: dict[str, EventRecipient] = {}
    unresolved: list[str] = []
    for kind, value, context in parsed:
        if kind == "id":
            user = by_id.get(value)
            recipient = EventRecipient(user=user, context=context) if user else None
        elif kind == "username":
            user = by_name.get(value)
            recipient = EventRecipient(user=user, context=context) if user else None
        else:
            user = by_email.get(value)
            if user is not None:
                recipient = EventRecipient(user=user, context=context)
            else:
                try:
                    validate_email(value)
                    recipient = EventRecipient(address=value, context=context)
                except ValidationError:
                    recipient = None
        if recipient is None:
            unresolved.append(str(value))
        else:
            resolved.setdefault(recipient.key(), recipient)
    return list(resolved.values()), unresolved


def platform_admins(platform: Platform) -> list:
    return list(platform_members(platform=platform, admin=True).order_by("pk"))


def human_support_recipients(
    *, platform: Platform, config: dict, context: dict
) -> tuple[list[EventRecipient], list[str], dict]:
    """Recipients by `recipient_mode` (IBL §7.2/§9.1); also fills mentor variables from the mentor record."""
    mode = config.get("recipient_mode") or defaults.DEFAULT_HUMAN_SUPPORT_CONFIG["recipient_mode"]
    mentor = None
    if context.get("mentor_unique_id"):
        mentor = (
            Mentor.objects.filter(platform=platform, unique_id=str(context["mentor_unique_id"]))
            .select_related("owner")
            .first()
        )
    extra = {}
    if mentor is not None and not context.get("mentor_name"):
        extra["mentor_name"] = mentor.name
    owner = mentor.owner if mentor is not None and mentor.owner_id else None
    if owner is not None and not platform_members(platform=platform).filter(pk=owner.pk).exists():
        owner = None  # an owner who left the platform (or was deactivated) no longer hears about it
    people: list = []
    if mode in ("platform_admins_and_mentor_owner", "platform_admins_only"):
        people.extend(platform_admins(platform))
    if mode in ("platform_admins_and_mentor_owner", "mentor_owner_only") and owner is not None:
        people.append(owner)
    if mode == "custom":
        return (*recipients_resolve(platform=platform, specs=list(config.get("custom_recipients") or [])), extra)
    return [EventRecipient(user=u) for u in people], [], extra


def _payload_hash(notification_type: str, recipients: list, context: dict, channels) -> str:
    payload = {"type": notification_type, "recipients": recipients, "context": context, "channels": channels}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _source_label(effective: EffectiveTemplate) -> str:
    return effective.template.platform.key if effective.template.platform_id else selectors.MAIN_PLATFORM


def _policy_gate(effective: EffectiveTemplate, context: dict) -> tuple[str, str]:
    """(skip reason or "", subject override or "") for POLICY_ASSIGNMENT."""
    config = effective.template.policy_config or defaults.DEFAULT_POLICY_CONFIG
    assigned = context.get("assigned", True)
    assigned = assigned if isinstance(assigned, bool) else str(assigned).lower() in ("1", "true", "yes")
    if assigned and not config.get("notify_on_assignment", True):
        return "Notifications on policy assignment are turned off for this platform.", ""
    if not assigned and not config.get("notify_on_removal", True):
        return "Notifications on policy removal are turned off for this platform.", ""
    role = str(context.get("role_name") or "")
    for policy in config.get("enabled_policies") or []:
        if policy.get("role_name") == role:
            if not policy.get("enabled", True):
                return f"Notifications for the {role} role are turned off for this platform.", ""
            return "", policy.get("subject") or ""
    return "", ""


def _result(
    event: NotificationEvent, effective: EffectiveTemplate | None, *, channels, requested: int, resolved, unresolved
) -> dict:
    return {
        "id": str(event.pk),
        "event_id": event.event_id,
        "type": event.type,
        "status": event.status,
        "reason": event.reason or None,
        "template": None
        if effective is None
        else {
            "id": effective.template.api_id,
            "is_inherited": effective.is_inherited,
            "source_platform": _source_label(effective),
        },
        "channels": list(channels),
        "recipients": {"requested": requested, "resolved": resolved, "unresolved": unresolved},
        "deliveries": {},
        "sent": 0,
        "failed": 0,
        "pending": 0,
        "suppressed": 0,
        "opted_out": 0,
    }


def _event_record(
    *, platform: Platform, event_id: str, notification_type: str, payload_hash: str, context: dict, user
) -> NotificationEvent:
    existing = NotificationEvent.objects.filter(platform=platform, event_id=event_id).first()
    if existing is not None:
        if existing.payload_hash != payload_hash:
            raise EventConflict(event_id)
        return existing
    try:
        with transaction.atomic():
            return NotificationEvent.objects.create(
                platform=platform,
                event_id=event_id,
                type=notification_type,
                payload_hash=payload_hash,
                context=context,
                status=EventStatus.PROCESSED,
                created_by=user if user is not None and getattr(user, "is_authenticated", False) else None,
            )
    except IntegrityError:
        # The same event posted twice at once: both run through the same
        # delivery source, whose unique keys keep it to one delivery each.
        existing = NotificationEvent.objects.get(platform=platform, event_id=event_id)
        if existing.payload_hash != payload_hash:
            raise EventConflict(event_id) from None
        return existing


def event_notify(
    *,
    platform: Platform,
    notification_type: str,
    recipients: list,
    context: dict,
    channels: list[str] | None = None,
    event_id: str | None = None,
    user=None,
) -> dict:
    """Deliver one platform event. Raises ValidationError (400), EventConflict (409).

    Posting the same `event_id` again with the same payload re-runs the same
    delivery source: recipients already sent to are not sent to again.
    """
    effective = selectors.template_for_type(platform=platform, notification_type=notification_type)
    if effective is None:
        raise ValidationError({"type": [f"Unknown notification type {notification_type!r}."]})
    if len(recipients) > _max_recipients():
        raise ValidationError({"recipients": [f"At most {_max_recipients()} recipients per event."]})

    allowed = effective.channel_names()
    if channels:
        refused = [c for c in channels if c not in allowed]
        if refused:
            raise ValidationError(
                {"channels": [f"The {notification_type} template does not deliver over: {', '.join(refused)}."]}
            )
        chosen = [c for c in allowed if c in channels]
    else:
        chosen = list(allowed)
    # What the pipeline will deliver over on this platform (push may be switched off).
    chosen = list(eligibility.platform_channels(platform=platform, channels=chosen))

    event_key = str(event_id) if event_id else str(uuid.uuid4())
    payload_hash = _payload_hash(notification_type, recipients, context, channels)
    event = _event_record(
        platform=platform,
        event_id=event_key,
        notification_type=notification_type,
        payload_hash=payload_hash,
        context=context,
        user=user,
    )

    def finish(status: str, reason: str, result: dict) -> dict:
        event.status, event.reason = status, reason
        result["status"], result["reason"] = status, reason or None
        event.result = result
        event.save(update_fields=["status", "reason", "result", "updated_at"])
        return result

    resolved, unresolved = recipients_resolve(platform=platform, specs=recipients)
    context = dict(context)
    subject_override = ""
    skip_reason = ""
    if not effective.is_enabled:
        skip_reason = f"Notification type {notification_type} is disabled for this platform."
    elif notification_type == POLICY:
        skip_reason, subject_override = _policy_gate(effective, context)
    elif notification_type == HUMAN_SUPPORT:
        config = effective.template.human_support_config or defaults.DEFAULT_HUMAN_SUPPORT_CONFIG
        extra_people, extra_unresolved, extra_context = human_support_recipients(
            platform=platform, config=config, context=context
        )
        context = {**extra_context, **context}
        keys = {r.key() for r in resolved}
        resolved += [r for r in extra_people if r.key() not in keys]
        unresolved += extra_unresolved
    result = _result(
        event, effective, channels=chosen, requested=len(recipients), resolved=len(resolved), unresolved=unresolved
    )
    if skip_reason:
        return finish(EventStatus.SKIPPED, skip_reason, result)
    if not resolved:
        return finish(EventStatus.SKIPPED, "No recipients: none of the given recipients is on this platform.", result)
    if not chosen:
        return finish(EventStatus.SKIPPED, "No channel left to deliver over.", result)

    # Every message is rendered before anything is written: a template that
    # cannot render fails the event (400) with nothing sent.
    messages = rendered_ahead(
        render=renderer_for(
            platform=platform,
            channels=chosen,
            template=effective.template,
            content={"email_subject": subject_override} if subject_override else None,
            context=_template_content_rendered(platform=platform, context=context),
            error=partial(_render_failed, effective.type),
        ),
        audience=((r.recipient(), r.user) for r in resolved),
        channels=chosen,
    )
    # Users and bare addresses in one call: the pipeline gives an address only the channels it serves.
    counts = notification_send(
        platform=platform,
        source=event.source,
        channels=chosen,
        recipients=messages.recipients,
        render=messages,
    )
    addresses = eligibility.address_channels(chosen)
    expected = {
        c: sum(1 for r in resolved if r.user is not None or c in addresses[eligibility.address_kind(r.address)])
        for c in chosen
    }
    _fill_counts(result, counts=counts, expected=expected)
    return finish(EventStatus.PROCESSED, "", result)


def _fill_counts(result: dict, *, counts: SendResult, expected: dict[str, int]) -> None:
    """The send's counts per channel, and per channel the recipients who got no row (opted out)."""
    for channel, wanted in expected.items():
        per = counts.per_channel.get(channel, {"sent": 0, "failed": 0, "pending": 0, "suppressed": 0})
        opted_out = max(wanted - sum(per.values()), 0)
        result["deliveries"][channel] = {**per, "opted_out": opted_out}
        result["opted_out"] += opted_out
    result["sent"], result["failed"], result["pending"] = counts.sent, counts.failed, counts.pending
    result["suppressed"] = counts.suppressed


def _render_failed(notification_type: str, exc: TemplateError) -> ValidationError:
    return ValidationError({"template": [f"The {notification_type} template failed to render: {exc}"]})


def _template_content_rendered(*, platform: Platform, context: dict) -> dict:
    """HUMAN_SUPPORT's optional custom content is itself a template (§8.2): rendered once, before the message."""
    if not context.get("template_content"):
        return context
    try:
        content = render(str(context["template_content"]), {**platform_globals(platform), **context})
    except TemplateError as exc:
        raise ValidationError({"context": [f"template_content: {exc}"]}) from None
    return {**context, "template_content": content}

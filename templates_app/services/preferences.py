"""Per-user opt-outs (IBL §10, extended): writes, the unsubscribe link, and the pipeline filter."""

from __future__ import annotations

from datetime import time

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction

from notifications.models import Channel, Platform, SuppressionReason
from notifications.suppressions import suppression_add, unsubscribe_lift
from templates_app import defaults
from templates_app.digests.rules import digest_plan, plan_from
from templates_app.messages import UNSUBSCRIBE_SALT
from templates_app.models import (
    ALL_TYPES,
    DigestCadence,
    DigestRule,
    NotificationTemplate,
    QuietHours,
    UserNotificationPreference,
)
from templates_app.selectors import effective_choice

# An unsubscribe link stays valid this long (a year: emails are read late).
UNSUBSCRIBE_MAX_AGE = 365 * 24 * 3600


def known_types(*, platform: Platform) -> set[str]:
    custom = NotificationTemplate.objects.filter(platform=platform, is_custom=True).values_list("type", flat=True)
    return set(defaults.SYSTEM_TYPES) | set(custom)


def preferences_update(*, platform: Platform, user, changes: list[dict]) -> None:
    """Apply `[{"type", "channel"?, "enabled"}]`; a missing channel means every channel.

    Critical types cannot be switched off; unknown types or channels are refused.
    Nothing is written unless every change is valid.
    """
    types = known_types(platform=platform)
    errors: list[str] = []
    for index, change in enumerate(changes):
        type_ = change["type"]
        channel = change.get("channel") or ""
        if type_ != ALL_TYPES and type_ not in types:
            errors.append(f"[{index}].type: unknown notification type {type_!r}.")
        elif type_ in defaults.CRITICAL_TYPES and not change["enabled"]:
            errors.append(f"[{index}].type: {type_} is a critical notification type and cannot be turned off.")
        if channel and channel not in Channel.values:
            errors.append(f"[{index}].channel: unknown channel {channel!r}.")
    if errors:
        raise ValidationError({"preferences": errors})
    with transaction.atomic():
        for change in changes:
            channel = change.get("channel") or ""
            scope = {"platform": platform, "user": user, "notification_type": change["type"]}
            if not channel:
                # "every channel" replaces the per-channel choices made before it.
                UserNotificationPreference.objects.filter(**scope).exclude(channel="").delete()
            UserNotificationPreference.objects.update_or_create(
                **scope, channel=channel, defaults={"enabled": bool(change["enabled"])}
            )
            if change["enabled"] and channel in ("", Channel.EMAIL) and user.email:
                # Switched back on: the unsubscribe link's entry on the suppression list goes too.
                unsubscribe_lift(platform_id=platform.pk, address=user.email, notification_type=change["type"])


def delivery_schedule_update(*, platform: Platform, user, changes: dict) -> None:
    """Apply `time_zone` (the user's IANA zone) and `quiet_hours` ({"start", "end"} as HH:MM, or None: the
    platform's default) when present in `changes`, already validated by the caller."""
    with transaction.atomic():
        if "time_zone" in changes:
            user.timezone = changes["time_zone"]
            user.save(update_fields=["timezone"])
        if "quiet_hours" in changes:
            window = changes["quiet_hours"]
            if window is None:
                QuietHours.objects.filter(platform=platform, user=user).delete()
            else:
                QuietHours.objects.update_or_create(
                    platform=platform,
                    user=user,
                    defaults={"start": _wall(window["start"]), "end": _wall(window["end"])},
                )


def _wall(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def delivery_schedule_of(*, platform: Platform, user) -> dict:
    """The user's time zone and quiet hours as the preferences API shows them."""
    own = QuietHours.objects.filter(platform=platform, user=user).first()
    default = None
    if platform.quiet_hours_start is not None and platform.quiet_hours_end is not None:
        default = {"start": f"{platform.quiet_hours_start:%H:%M}", "end": f"{platform.quiet_hours_end:%H:%M}"}
    return {
        "time_zone": user.timezone,
        "quiet_hours": {"start": f"{own.start:%H:%M}", "end": f"{own.end:%H:%M}"} if own else None,
        "platform_quiet_hours": default,
    }


def cadences_update(*, platform: Platform, user, changes: list[dict]) -> None:
    """Apply `[{"type", "cadence"}]`: the user's own digest cadence per type, null to follow the platform.

    Only a cadence the platform's digest rule for the type offers is taken;
    critical types are never digested. Nothing is written unless every change is valid.
    """
    errors: list[str] = []
    for index, change in enumerate(changes):
        type_, cadence = change["type"], change["cadence"]
        if type_ in defaults.CRITICAL_TYPES:
            errors.append(f"[{index}].type: {type_} is a critical notification type: it is never digested.")
            continue
        plan = digest_plan(platform=platform, notification_type=type_)
        if plan is None:
            errors.append(f"[{index}].type: {type_!r} is not digested on this platform.")
        elif cadence is not None and cadence not in plan.learner_cadences:
            offered = ", ".join(plan.learner_cadences) or "none"
            errors.append(f"[{index}].cadence: {cadence!r} is not offered for {type_} (offered: {offered}).")
    if errors:
        raise ValidationError({"cadences": errors})
    with transaction.atomic():
        for change in changes:
            scope = {"platform": platform, "user": user, "notification_type": change["type"]}
            if change["cadence"] is None:
                DigestCadence.objects.filter(**scope).delete()
            else:
                DigestCadence.objects.update_or_create(**scope, defaults={"cadence": change["cadence"]})


def digest_choices(*, platform: Platform, user) -> dict[str, dict]:
    """{type: {"cadence", "cadences"}} for each type the platform digests: the user's choice and the offer."""
    chosen = dict(
        DigestCadence.objects.filter(platform=platform, user=user).values_list("notification_type", "cadence")
    )
    out = {}
    for rule in DigestRule.objects.filter(platform=platform, enabled=True).exclude(
        notification_type__in=defaults.CRITICAL_TYPES
    ):
        plan = plan_from(rule)
        if plan is not None:
            cadence = chosen.get(rule.notification_type)
            out[rule.notification_type] = {
                "cadence": cadence if cadence in plan.learner_cadences else None,
                "cadences": list(plan.learner_cadences),
            }
    return out


def preferences_reset(*, platform: Platform, user) -> int:
    """Back to receiving everything, each type at the platform's cadence."""
    DigestCadence.objects.filter(platform=platform, user=user).delete()
    deleted, _ = UserNotificationPreference.objects.filter(platform=platform, user=user).delete()
    return deleted


def deliveries_filter_opted_out(*, platform: Platform, rows) -> set[int]:
    """The recipient filter registered with the core: the indexes of the rows whose user opted out.

    `rows` is an `eligibility.Candidates`. Most sends reach nobody with a
    preference row, and then cost one query and no work per row.
    """
    critical = set(defaults.CRITICAL_TYPES)
    types = set(rows.types) - critical
    user_ids = set(rows.user_ids)
    user_ids.discard(None)
    if not types or not user_ids:
        return set()
    prefs = list(
        UserNotificationPreference.objects.filter(
            platform=platform, user__any_of=user_ids, notification_type__in=types | {ALL_TYPES}
        )
    )
    if not prefs:
        return set()
    by_user: dict[int, list[UserNotificationPreference]] = {}
    for pref in prefs:
        by_user.setdefault(pref.user_id, []).append(pref)
    return {
        i
        for i, (user_id, type_, channel) in enumerate(zip(rows.user_ids, rows.types, rows.channels, strict=True))
        if user_id in by_user
        and type_ not in critical
        and not effective_choice(by_user[user_id], notification_type=type_, channel=channel)
    }


class BadUnsubscribeToken(Exception):
    pass


def unsubscribe_read(token: str) -> dict:
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT, max_age=UNSUBSCRIBE_MAX_AGE)
    except signing.BadSignature as exc:
        raise BadUnsubscribeToken(str(exc)) from None
    return data


def unsubscribe_apply(token: str):
    """One-click unsubscribe (RFC 8058): switch the link's type off on every channel."""
    from django.contrib.auth import get_user_model

    data = unsubscribe_read(token)
    platform = Platform.objects.filter(pk=data.get("p")).first()
    user = get_user_model().objects.filter(pk=data.get("u")).first()
    if platform is None or user is None:
        raise BadUnsubscribeToken("unknown platform or user")
    with transaction.atomic():
        preferences_update(platform=platform, user=user, changes=[{"type": data["t"], "enabled": False}])
        if user.email:
            # The same opt-out on the platform's suppression list, where admins see every opt-out together.
            suppression_add(
                platform_id=platform.pk,
                channel=Channel.EMAIL,
                address=user.email,
                reason=SuppressionReason.UNSUBSCRIBED,
                source="unsubscribe_link",
                notification_type=data["t"],
            )
    return platform, user, data["t"]

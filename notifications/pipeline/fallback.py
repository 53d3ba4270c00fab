"""Channel fallback and escalation: a delivery of its own on another channel, decided by the pipeline.

- **Fallback** ("push, else SMS"): a delivery that cannot reach the recipient
  on its channel gets one on the fallback channel. Decided where the failure
  becomes known: at write time (`build`) for a user without an active push
  device or without the address an email/SMS needs, in bulk per chunk; in
  dispatch (`fallback_after_failures`) for a delivery the provider refused for
  good (a non-retryable failure such as FCM's UNREGISTERED on every device).
  A failure that could be retried (a timeout, a 5xx, retries run out) does not
  fall back: the first delivery may have gone through.
- **Escalation** ("in-app still unread after N minutes, then email"): the
  `escalations` due-work source (registered by the core's AppConfig.ready)
  claims the sends whose in-app rows fall due, under a lease, and writes a
  delivery for each in-app row still unread, in bulk.

Each follow-up is its own row under the pipeline's unique key (source,
channel, recipient_key) with `rule` fallback or escalation, written
ON CONFLICT DO NOTHING: a retry, a re-run of the send or a second sweep can
never write or send it twice, and a recipient who already has a row on that
channel in the same send (the send asked for push and SMS) gets nothing more.
Follow-ups pass the same eligibility as every row (the platform's channel
switches, the recipient's opt-outs) and carry the original row's content,
or the content rendered for their channel (below).

Where the rules come from: the caller's `fallback_channel` (bulk requests,
scheduled jobs), else the platform's policy for the notification type, looked
up through `policies.register_policy_lookup` (templates_app keeps it with the
template's other per-platform settings). The rules a send was written under
are kept per (source, type) in `DeliveryPlan`, which dispatch and the
escalation sweep (`escalation`) read. A follow-up that fails for good may fall
back in turn (push, else SMS, else email); the unique key ends any chain.

Content of a fallback written in dispatch: the original row's, unless an app
that renders content (`register_follow_up_renderer`; templates_app for rows
rendered from a type's template) gives the message for the new channel, so an
SMS that replaces a refused email carries the template's SMS text, not the
email's subject and body. Write-time fallbacks are rendered by the send's own
renderer (`build`); escalations carry the in-app row's content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from django.utils import timezone

import notifications.pipeline.eligibility as eligibility
import notifications.pipeline.sql as sql
import notifications.pipeline.tuning as tuning
from notifications import metrics
from notifications.models import DeliveryPlan, InboxStatus, Notification
from notifications.pipeline.build import (
    ADDRESSED,
    FAILED,
    PENDING,
    SENT,
    address_for,
    delivered_on_write,
    missing_address_error,
)
from notifications.pipeline.policies import FALLBACK, allowed_channels
from notifications.pipeline.write import direct_channels, write_chunk

logger = logging.getLogger(__name__)

# --- follow-up rows ------------------------------------------------------------------

# What a follow-up copies from the row it follows.
COPIED = (
    "platform_id",
    "user_id",
    "recipient_key",
    "source",
    "notification_type",
    "level",
    "title",
    "body",
    "html",
    "short_message",
    "context",
    "data",
    "image_url",
)


def follow_up_batch(
    originals: Sequence[dict], *, channels: Sequence[str], rule: str, contacts: dict[int, tuple[str, str]]
) -> sql.Batch:
    """Rows on `channels[i]` for `originals[i]` (dicts of COPIED), filtered like any row.

    Rows of recipients who opted out of the type on the new channel are left
    out (the registered recipient filters); a user without the address the
    channel needs gets a failed row that says so, as a send would.
    """
    keep = list(range(len(originals)))
    if eligibility.has_recipient_filters():
        by_platform: dict[int, list[int]] = {}
        for i, row in enumerate(originals):
            by_platform.setdefault(row["platform_id"], []).append(i)
        dropped: set[int] = set()
        for platform_id, indexes in by_platform.items():
            rows = eligibility.Candidates(
                user_ids=[originals[i]["user_id"] for i in indexes],
                channels=[channels[i] for i in indexes],
                types=[originals[i]["notification_type"] for i in indexes],
            )
            dropped |= {indexes[j] for j in eligibility.recipients_dropped(platform=platform_id, rows=rows)}
        keep = [i for i in keep if i not in dropped]
    now = timezone.now()
    batch = sql.Batch(len(keep))
    batch.set("id", sql.uuid7s(len(keep)))
    for name in COPIED:
        batch.set(name, [originals[i][name] for i in keep])
    columns: dict[str, list] = {n: [] for n in ("channel", "address", "delivery_status", "error")}
    for i in keep:
        channel = channels[i]
        email, phone = contacts.get(originals[i]["user_id"], ("", ""))
        address = address_for(channel, email, phone)
        error = "" if address or channel not in ADDRESSED else missing_address_error(channel)
        status = FAILED if error else SENT if delivered_on_write(channel) else PENDING
        for name, value in (("channel", channel), ("address", address), ("delivery_status", status), ("error", error)):
            columns[name].append(value)
    for name, values in columns.items():
        batch.set(name, values)
    statuses = columns["delivery_status"]
    batch.set("status", str(InboxStatus.UNREAD))
    batch.set("rule", rule)
    batch.set("provider_message_id", "")
    batch.set("claimed_until", None)
    batch.set("created_at", now)
    batch.set("updated_at", now)
    batch.set("read_at", None)
    batch.set("attempts", [1 if s == SENT else 0 for s in statuses])
    batch.set("units_sent", [1 if s == SENT else 0 for s in statuses])
    batch.set("units_failed", [1 if s == FAILED else 0 for s in statuses])
    batch.set("sent_at", [now if s == SENT else None for s in statuses])
    pending_due = now + tuning.lease()  # the sweep steps in if nobody dispatches them first
    batch.set("next_attempt_at", [pending_due if s == PENDING else None for s in statuses])
    return batch


def follow_ups_write(
    originals: Sequence[dict], *, channels: Sequence[str], rule: str, contacts: dict[int, tuple[str, str]]
) -> dict[str, list[str]]:
    """Write follow-up rows; returns the ids of the pending ones this call created, by channel."""
    if not originals:
        return {}
    batch = follow_up_batch(originals, channels=channels, rule=rule, contacts=contacts)
    if not batch.size:
        return {}
    inserted = write_chunk(batch, fresh_source=False, direct_channels=direct_channels(set(channels)))
    if inserted:
        written: dict[str, int] = {}
        for pk, channel in zip(batch.column("id"), batch.column("channel"), strict=True):
            if pk in inserted:
                written[channel] = written.get(channel, 0) + 1
        metrics.delivery_rule_applied(rule=rule, counts=written)
    pending: dict[str, list[str]] = {}
    for pk, channel, status in zip(
        batch.column("id"), batch.column("channel"), batch.column("delivery_status"), strict=True
    ):
        if pk in inserted and status == PENDING:
            pending.setdefault(channel, []).append(pk)
    return pending


# --- fallback in dispatch -----------------------------------------------------------------

# render(rows=[(failed Notification, fallback channel), ...]) -> {row index: Message} for the rows
# the app can render afresh for their new channel; the others keep the original content.
FollowUpRenderer = Callable[..., dict]
_RENDERERS: list[FollowUpRenderer] = []
# The fields of a fallback that come from its message rather than from the original row.
RENDERED = ("title", "body", "html", "short_message", "data")


def register_follow_up_renderer(fn: FollowUpRenderer) -> FollowUpRenderer:
    """Registered in an AppConfig.ready() by an app that renders content (the core cannot import it)."""
    if fn not in _RENDERERS:
        _RENDERERS.append(fn)
    return fn


def _rendered_afresh(rows: Sequence[tuple[Notification, str]]) -> dict:
    found: dict = {}
    for fn in list(_RENDERERS):
        try:
            made = fn(rows=rows)
        except Exception:
            # The fallback still goes, with the original content: better than none.
            logger.exception("rendering %s fallbacks afresh failed", len(rows))
            continue
        for index, message in made.items():
            found.setdefault(index, message)
    return found


def fallback_after_failures(failures: Sequence[Notification]) -> dict[str, list[str]]:
    """Fallback rows for deliveries the provider refused for good; returns the new pending ids by channel.

    `failures` come from one recorded group (rows claimed with their user and
    platform). One query finds their sends' plans; nothing is written for a
    send without a fallback for that channel.
    """
    # A follow-up may fall back in turn (push, else SMS, else email); the unique key ends any chain.
    failures = [d for d in failures if d.user_id is not None]
    if not failures:
        return {}
    plans = {
        (p.source, p.notification_type): p.fallback
        for p in DeliveryPlan.objects.filter(
            source__in={d.source for d in failures}, notification_type__in={d.notification_type for d in failures}
        ).only("source", "notification_type", "fallback")
    }
    originals, channels, contacts = [], [], {}
    kept: list[tuple[Notification, str]] = []  # (failed row, fallback channel), beside `originals`
    allowed: dict[int, tuple[str, ...]] = {}
    for d in failures:
        to = (plans.get((d.source, d.notification_type)) or {}).get(d.channel)
        if not to:
            continue
        if d.platform_id not in allowed:
            allowed[d.platform_id] = allowed_channels(d.platform)
        if to not in allowed[d.platform_id]:
            continue
        originals.append({name: getattr(d, name) for name in COPIED})
        channels.append(to)
        kept.append((d, to))
        contacts[d.user_id] = (d.user.email, d.user.phone_number)
    if kept and _RENDERERS:
        for index, message in _rendered_afresh(kept).items():
            originals[index].update({name: getattr(message, name) for name in RENDERED})
    return follow_ups_write(originals, channels=channels, rule=FALLBACK, contacts=contacts)

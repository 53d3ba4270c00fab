"""The rows of one chunk of recipients, column by column, ready for `sql.insert`.

One row per recipient and eligible channel (see `eligibility`): its address,
its status as written (in-app rows are the delivery and go in `sent`; a user
without the address a channel needs goes in `failed`; the rest `pending` for
dispatch) and its message, fixed or rendered per recipient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.utils import timezone

import notifications.pipeline.eligibility as eligibility
import notifications.pipeline.rules as rules
import notifications.pipeline.sql as sql
import notifications.pipeline.tuning as tuning
from notifications.backends import backend_class
from notifications.channels import Channel, settings_key
from notifications.models import DeliveryStatus, InboxStatus
from notifications.pipeline.parts import Message, Recipient, Renderer

# Plain strings for the row columns: comparing and dumping 100k enum members costs.
SENT, FAILED, PENDING, SUPPRESSED = (
    str(s.value)
    for s in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.PENDING, DeliveryStatus.SUPPRESSED)
)
_UNREAD = str(InboxStatus.UNREAD.value)
_MESSAGE_FIELDS = ("notification_type", "level", "title", "body", "html", "short_message", "data", "image_url")
_ADDRESSED = (Channel.EMAIL, Channel.SMS)


def delivered_on_write(channel: str) -> bool:
    """True for channels whose row is the delivery (in-app): written as sent."""
    return bool(getattr(backend_class(settings_key(channel)), "delivered_on_write", False))


@dataclass(frozen=True)
class WriteJob:
    platform_id: int
    source: str
    # The channels the platform allows (see `eligibility.platform_channels`).
    channels: tuple[str, ...]
    direct: frozenset[str]
    message: Message | None
    render: Renderer | None
    # No row of the source existed when the send began (see sql.insert_postgresql).
    fresh_source: bool = False


def _address_for(channel: str, email: str, phone: str) -> str:
    if channel == Channel.EMAIL:
        return email or ""
    if channel == Channel.SMS:
        return phone or ""
    return ""


def _missing_address_error(channel: str) -> str:
    return {Channel.EMAIL: "User has no email address", Channel.SMS: "User has no phone number"}.get(channel, "")


def build_rows(job: WriteJob, chunk: Sequence[Recipient]) -> sql.Batch:
    """The rows of one chunk of recipients (see `sql.Batch`)."""
    now = timezone.now()
    user_ids = [r.user_id for r in chunk if r.user_id is not None]
    if job.render is not None:
        users = get_user_model().objects.in_bulk(user_ids)
        known = {pk: (u.email, u.phone_number) for pk, u in users.items()}
    else:
        # Without a renderer nobody needs the account itself, and only email
        # and SMS need its addresses.
        addresses = any(c in _ADDRESSED for c in job.channels)
        users, known = {}, sql.contacts(user_ids, addresses=addresses)
    by_address = eligibility.address_channels(job.channels)
    per_row_message = job.render is not None or any(r.context for r in chunk)
    col_user, col_key, col_address, col_channel, col_status, col_error = [], [], [], [], [], []
    messages, contexts = [], []
    for r in chunk:
        if r.user_id is None:
            channels = by_address[eligibility.address_kind(r.address)]
        elif r.user_id in known:
            channels = job.channels
        else:
            continue  # deleted between resolution and write
        email, phone = known.get(r.user_id, ("", ""))
        key = r.key()
        for channel in channels:
            address = r.address
            if not address and channel in _ADDRESSED:
                address = _address_for(channel, email, phone)
            error = "" if address or channel not in _ADDRESSED else _missing_address_error(channel)
            col_user.append(r.user_id)
            col_key.append(key)
            col_address.append(address)
            col_channel.append(channel)
            col_error.append(error)
            col_status.append(FAILED if error else SENT if channel in job.direct else PENDING)
            if per_row_message:
                msg = job.message if job.render is None else job.render(r, channel, users.get(r.user_id))
                messages.append(msg)
                contexts.append({**msg.context, **r.context} if r.context else msg.context)
    if eligibility.has_recipient_filters():
        # Opted-out recipients get no row, on every send path.
        types = (
            [m.notification_type for m in messages]
            if per_row_message
            else [job.message.notification_type] * len(col_key)
        )
        candidates = [
            eligibility.Candidate(i, col_user[i], col_channel[i], types[i])
            for i in range(len(col_key))
            if col_user[i] is not None
        ]
        kept = {c.index for c in eligibility.recipients_filter(platform=job.platform_id, rows=candidates)}
        keep = [i for i in range(len(col_key)) if col_user[i] is None or i in kept]
        if len(keep) != len(col_key):
            columns = [col_user, col_key, col_address, col_channel, col_status, col_error]
            if per_row_message:
                columns += [messages, contexts]
            for column in columns:
                column[:] = [column[i] for i in keep]
    count = len(col_key)
    decisions = (
        _rule(job, now, col_user, col_key, col_channel, col_status, messages if per_row_message else None)
        if count and rules.has_rules()
        else {}
    )
    batch = sql.Batch(count)
    batch.set("id", sql.uuid7s(count))
    batch.set("platform_id", job.platform_id)
    batch.set("user_id", col_user)
    batch.set("recipient_key", col_key)
    batch.set("address", col_address)
    batch.set("channel", col_channel)
    batch.set("source", job.source)
    if per_row_message:
        for name in _MESSAGE_FIELDS:
            batch.set(name, [getattr(m, name) for m in messages])
        batch.set("context", contexts)
    else:
        for name in _MESSAGE_FIELDS:
            batch.set(name, getattr(job.message, name))
        batch.set("context", job.message.context)
    batch.set("status", _UNREAD)
    batch.set("delivery_status", col_status)
    batch.set("error", col_error)
    batch.set("rule", [d.rule if (d := decisions.get(i)) else "" for i in range(count)] if decisions else "")
    batch.set("provider_message_id", "")
    batch.set("claimed_until", None)
    batch.set("created_at", now)
    batch.set("updated_at", now)
    batch.set("read_at", None)
    # Columns that follow from the delivery status; one value each when all rows share it.
    pending_due = now + tuning.lease()  # the sweep steps in for a writer that died
    derived = {
        "attempts": {SENT: 1, FAILED: 0, PENDING: 0, SUPPRESSED: 0},
        "units_sent": {SENT: 1, FAILED: 0, PENDING: 0, SUPPRESSED: 0},
        "units_failed": {SENT: 0, FAILED: 1, PENDING: 0, SUPPRESSED: 0},
        "next_attempt_at": {SENT: None, FAILED: None, PENDING: pending_due, SUPPRESSED: None},
        "sent_at": {SENT: now, FAILED: None, PENDING: None, SUPPRESSED: None},
    }
    uniform = count and col_status.count(col_status[0]) == count
    for name, by_status in derived.items():
        batch.set(name, by_status[col_status[0]] if uniform else [by_status[v] for v in col_status])
    if decisions:
        # A deferred row waits for its rule's time, not for the writer's lease.
        due = batch.column("next_attempt_at")
        for i, decision in decisions.items():
            if decision.action == rules.DEFER:
                due[i] = decision.until
        batch.set("next_attempt_at", due)
    return batch


def _rule(job: WriteJob, now, col_user, col_key, col_channel, col_status, messages) -> dict[int, rules.Decision]:
    """Ask the delivery rules about the chunk's rows; apply their statuses to `col_status` in place."""
    if messages is None:
        types, critical = job.message.notification_type, job.message.critical
    else:
        types, critical = [m.notification_type for m in messages], [m.critical for m in messages]
    decisions = rules.decide(
        platform=job.platform_id,
        now=now,
        channels=job.channels,
        user_ids=col_user,
        keys=col_key,
        row_channels=col_channel,
        types=types,
        critical=critical,
        skip={i for i, status in enumerate(col_status) if status == FAILED},
    )
    for i, decision in decisions.items():
        if decision.action == rules.DEFER:
            col_status[i] = PENDING
        elif decision.action == rules.SUPPRESS:
            col_status[i] = SUPPRESSED
    return decisions
